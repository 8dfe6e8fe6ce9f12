package jobs

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/provisioning/archive"
)

// PurgeArchiveArgs purges archives past their retention.
type PurgeArchiveArgs struct{}

// Kind is stable: stored jobs refer to it.
func (PurgeArchiveArgs) Kind() string { return "purge_archive" }

// InsertOpts puts purges on the maintenance queue.
func (PurgeArchiveArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance}
}

// PurgeArchiveWorker purges the archives past their retention, daily.
type PurgeArchiveWorker struct {
	river.WorkerDefaults[PurgeArchiveArgs]
	deps *Deps
}

// Work runs one purge.
func (w *PurgeArchiveWorker) Work(ctx context.Context, _ *river.Job[PurgeArchiveArgs]) error {
	res, err := archive.Purge(ctx, w.deps.Store(), w.deps.Key.NIRKey(), false)
	if err == nil {
		w.deps.Logger.Info("archive purged", "due", res.Due, "purged", res.Purged)
	}
	return err
}
