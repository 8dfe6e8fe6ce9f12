// Package wave launches and steers waves: the selection and its dry run,
// accounts created in chunks queued through an EnqueueFunc, the daily
// schedule, pause, resume, cancel and retry, window extensions, new rounds
// for people reachable again, continuous enrolment, and each wave's status
// and report.
//
// It imports the provisioning root, audit and notice (a wave's status
// counts its letters and relays). It never queues jobs itself: the caller
// passes the EnqueueFunc (jobs does).
package wave
