// Package audit owns the append-only audit log: events appended inside the
// transaction that makes the change they record, chained by an HMAC under
// ENS_AUDIT_KEY (kept outside the database), verified from the first event,
// and anchored outside the database by signed, chained anchors.
//
// It imports only the provisioning root. An event never holds a NIR, a
// code, an email or an address: account ids only.
package audit
