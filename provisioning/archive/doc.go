// Package archive owns what happens after activation: deleting an account
// into the ten-year archive (or for an express purge), reopening it,
// reinstating a person who had opposed, deaths from the registry, and the
// purge that leaves only a non-identifying trace.
//
// It imports the provisioning root and audit.
package archive
