package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/provisioning/wave"
)

// ComingOfAgeArgs tells the people told as minors who came of age: daily on
// the leader (the window sweep, every minute, only keeps them from being
// activated meanwhile).
type ComingOfAgeArgs struct{}

// Kind is stable: stored jobs refer to it.
func (ComingOfAgeArgs) Kind() string { return "coming_of_age" }

// InsertOpts — one waiting at a time, on the maintenance queue.
func (ComingOfAgeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: uniqueWhileOutstanding}}
}

// ComingOfAgeWorker runs wave.RenotifyComingOfAge.
type ComingOfAgeWorker struct {
	river.WorkerDefaults[ComingOfAgeArgs]
	deps   *Deps
	client func() *river.Client[pgx.Tx]
}

// Work tells those who came of age once.
func (w *ComingOfAgeWorker) Work(ctx context.Context, _ *river.Job[ComingOfAgeArgs]) error {
	n, err := wave.RenotifyComingOfAge(ctx, w.deps.Store(), Enqueuer(w.client()))
	if n > 0 {
		w.deps.Logger.Info("people told as minors came of age: told again, themselves", "accounts", n)
	}
	return err
}
