package audit

// EventHash lets tests play an attacker who re-hashes the audit chain.
var EventHash = eventHash
