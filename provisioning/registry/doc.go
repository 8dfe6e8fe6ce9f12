// Package registry reads the insured-person registry (SPEC §1): the header,
// each row's validation with a stable reject reason, the guard against a
// stray quote swallowing lines, the staging COPY, and the import that
// merges accepted rows into person, applies deaths, and writes the rejects
// file an operator fixes and re-imports.
//
// It imports the provisioning root, audit, and archive (a death closes and
// archives an active account).
package registry
