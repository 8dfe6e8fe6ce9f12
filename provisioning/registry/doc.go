// Package registry reads the insured-person registry (SPEC §1): the header,
// each row's validation with a stable reject reason, the guard against a
// stray quote swallowing lines, the staging COPY, and the import that
// merges accepted rows into person — refusing an identity conflict, listing
// name changes and possible duplicates, giving a person a number that
// replaces theirs — applies deaths, and writes the rejects file an operator
// fixes and re-imports.
//
// It imports the provisioning root, audit, archive (a death closes and
// archives an active account) and feed (a replaced number is a change the
// platform is told).
package registry
