// Package jobs owns River: the job argument types with their stable Kind()s,
// the workers (which hold their dependencies as fields), the periodic jobs and
// the client's configuration. It is the only package that wires provisioning,
// notify and optout together.
//
// Job arguments carry ids only — never a NIR, a name, an address, an email or
// a code: River stores them as jsonb and shows them in River UI.
package jobs
