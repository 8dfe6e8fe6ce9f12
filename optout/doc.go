// Package optout owns opposition codes — derivation, formatting, forgiving
// parsing, the Luhn mod 32 check symbol and the keyed lookup hash — and the
// public opposition channels (web form, JSON API). It changes account states
// only through provisioning.
//
// It must never store, log or put in an error a plaintext code: only
// LookupHash values reach the database.
package optout
