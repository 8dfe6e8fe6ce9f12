package jobs

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/provisioning/wave"
)

// EnrolArgs runs continuous enrolment once: daily on the leader, and after
// each registry import.
type EnrolArgs struct{}

// Kind is stable: stored jobs refer to it.
func (EnrolArgs) Kind() string { return "enrol" }

// InsertOpts — one waiting at a time, on the maintenance queue.
func (EnrolArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: uniqueWhileOutstanding}}
}

// EnrolWorker creates the accounts of people not yet enrolled, in the
// month's rolling wave, when enrolment is on; off, it does nothing.
type EnrolWorker struct {
	river.WorkerDefaults[EnrolArgs]
	deps   *Deps
	client func() *river.Client[pgx.Tx]
}

// Work runs one enrolment.
func (w *EnrolWorker) Work(ctx context.Context, _ *river.Job[EnrolArgs]) error {
	res, err := wave.Enrol(ctx, w.deps.Store(), Enqueuer(w.client()), w.deps.EnrolDailyCap, wave.LaunchOptions{})
	if errors.Is(err, wave.ErrEnrolmentOff) {
		return nil
	}
	if err == nil && res.Created > 0 {
		w.deps.Logger.Info("enrolled", "wave", res.Wave.Name, "created", res.Created, "active", res.Active)
	}
	return err
}
