// Package window owns the opposition window: finding a code's holder,
// opposing (online, by post with its postmark, or through an agent after an
// identity check), undoing an opposition, early activation, receipts, and
// closing windows — activating only accounts whose person was informed
// (notice.InformedProof).
//
// It imports the provisioning root, audit and notice.
package window
