// Package window owns the opposition window: finding a code's holder,
// opposing (online, by post with its postmark, or through an agent after an
// identity check, in every state before activation), undoing an
// opposition, early activation, receipts, and closing windows after their
// grace — activating only accounts whose person was informed
// (notice.InformedProof), at the end of the printed day where the person
// lives.
//
// It imports the provisioning root, audit, notice, and archive (a refusal
// postmarked in time and read after the activation closes the account).
package window
