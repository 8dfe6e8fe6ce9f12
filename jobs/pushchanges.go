package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/provisioning/feed"
)

// PushChangesArgs pushes the change feed to the platform, from the last
// sequence it acknowledged.
type PushChangesArgs struct{}

// Kind is stable: stored jobs refer to it.
func (PushChangesArgs) Kind() string { return "push_changes" }

// InsertOpts keeps one push queued at a time: pushes go in order.
func (PushChangesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: uniqueWhileOutstanding}}
}

// PushBatch is the most changes one push carries.
const PushBatch = 1000

// PushChangesWorker posts batches of the change feed to the platform,
// signed, each under an idempotency key naming its first and last sequence.
// A batch is recorded as being sent before it is posted, and its
// acknowledgement before the next: a retry after a lost answer, or after
// its worker was killed, sends the same batch under the same key, so the
// platform applies each change once. Delivery is at least once, in order,
// without gaps.
type PushChangesWorker struct {
	river.WorkerDefaults[PushChangesArgs]
	deps *Deps
}

// Work pushes until the platform has every change, or a push fails (River
// retries the job with backoff).
func (w *PushChangesWorker) Work(ctx context.Context, _ *river.Job[PushChangesArgs]) error {
	if w.deps.Platform == nil {
		return nil
	}
	for {
		changes, err := feed.NextPush(ctx, w.deps.Pool, PushBatch)
		if err != nil || len(changes) == 0 {
			return err
		}
		first, last := changes[0].Seq, changes[len(changes)-1].Seq
		body, err := json.Marshal(struct {
			Changes []feed.Change `json:"changes"`
		}{changes})
		if err != nil {
			return fmt.Errorf("encoding changes %d–%d: %w", first, last, err)
		}
		key := fmt.Sprintf("ens-changes-%d-%d", first, last)
		if err := w.deps.Platform.Push(ctx, body, key, w.deps.Clock.Now()); err != nil {
			if rerr := feed.RecordPushFailure(context.WithoutCancel(ctx), w.deps.Pool, err.Error()); rerr != nil {
				return errors.Join(err, rerr)
			}
			w.deps.Logger.Warn("platform push failed", "first_seq", first, "last_seq", last, "error", err)
			return err
		}
		if err := feed.RecordPushed(ctx, w.deps.Pool, last, w.deps.Clock.Now()); err != nil && !errors.Is(err, feed.ErrBehind) {
			return err
		}
		w.deps.Logger.Info("changes pushed to the platform", "first_seq", first, "last_seq", last)
	}
}

// pushTimeout bounds one push job: batches of PushBatch, each answered
// within the client's timeout.
const pushTimeout = 5 * time.Minute

// Timeout bounds a push job.
func (w *PushChangesWorker) Timeout(*river.Job[PushChangesArgs]) time.Duration { return pushTimeout }
