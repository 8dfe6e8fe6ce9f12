// Package jobs owns River: the job argument types with their stable Kind()s,
// the workers (which hold their dependencies as fields), the periodic jobs and
// the client's configuration. It is the only package that wires provisioning,
// notify and optout together. Each worker has a file of its own with its
// arguments (notifychunk.go, renderletters.go, closewindows.go, …); deps.go
// holds what they share, marker.go the group commit of accepted emails.
//
// Job arguments carry ids only — never a NIR, a name, an address, an email or
// a code: River stores them as jsonb and shows them in River UI.
package jobs
