// Package provisioning is the domain's shared vocabulary: an account's
// State and its allowed transitions, the Wave and its Window, the Target a
// notice goes to, notice kinds and channels, deadlines and the Clock in
// Paris calendar days, the NIR, postal addresses and departments, the
// database handle, its roles and the embedded migrations.
//
// Each capability lives in a sub-package that imports this one and, where
// it records a change, audit: registry (the import), wave (launch, control,
// status, report), notice (dispatch, letters, posting, returns, bounces),
// window (opposition, agents, early activation, closing) and archive
// (deletion, purge, reopening); report and reconcile read above them.
//
// This package imports no other ens package. Nothing under provisioning
// imports jobs, notify, optout or cmd: River, rendering and HTTP are wired
// in by their callers.
package provisioning
