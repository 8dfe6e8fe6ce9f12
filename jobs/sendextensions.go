package jobs

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// SendExtensionsArgs sends the follow-up emails waiting: curators' copies,
// extensions of a window, and codes re-sent (ens code resend).
type SendExtensionsArgs struct{}

// Kind is stable: stored jobs refer to it.
func (SendExtensionsArgs) Kind() string { return "send_extensions" }

// InsertOpts — one at a time, and another as soon as it has finished
// (River's default unique states include completed: a second person's
// follow-up then waited for the first job's row to be deleted, a day later).
func (SendExtensionsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotices, MaxAttempts: chunkMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: uniqueWhileOutstanding}}
}

// SendExtensionsWorker tells people their window was extended, and sends
// again the codes operators re-sent.
type SendExtensionsWorker struct {
	river.WorkerDefaults[SendExtensionsArgs]
	deps  *Deps
	chunk *NotifyChunkWorker
}

// Work sends follow-up emails in batches; failures fall back to letters.
func (w *SendExtensionsWorker) Work(ctx context.Context, job *river.Job[SendExtensionsArgs]) error {
	d := w.deps
	for {
		targets, err := notice.PendingFollowUpEmails(ctx, d.Pool, 500, d.Clock.Now())
		if err != nil || len(targets) == 0 {
			return err
		}
		byWave := map[int64][]provisioning.Target{}
		for _, t := range targets {
			byWave[t.WaveID] = append(byWave[t.WaveID], t)
		}
		for waveID, ts := range byWave {
			wave, err := provisioning.GetWaveByID(ctx, d.Pool, waveID)
			if err != nil {
				return err
			}
			if _, err := w.chunk.dispatch(ctx, wave, ts); err != nil {
				return err
			}
		}
	}
}
