package jobs

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// RenderLettersArgs renders the pending letters of one wave and department.
type RenderLettersArgs struct {
	WaveID     int64  `json:"wave_id"`
	Department string `json:"department"`
}

// Kind is stable: stored jobs refer to it.
func (RenderLettersArgs) Kind() string { return "render_letters" }

// InsertOpts — one render per wave and department queued or running at a time.
// Letters created while one runs are picked up by the sweep (QueueLetterSweep).
func (RenderLettersArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueLetters, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: uniqueWhileOutstanding}}
}

// letterQueuer inserts render jobs in tx (provisioning gives it a short one of its own).
// Departments whose render is already queued are left out before the
// insert: River would skip them too, but only after waiting for any other
// transaction inserting the same unique job to end, and every chunk of a
// wave queues nearly every department.
func letterQueuer(client func() *river.Client[pgx.Tx]) provisioning.LetterFunc {
	return func(ctx context.Context, tx pgx.Tx, waveID int64, depts []string) error {
		rows, err := tx.Query(ctx, queuedRendersSQL, RenderLettersArgs{}.Kind(), waveID)
		if err != nil {
			return fmt.Errorf("finding queued letter renders: %w", err)
		}
		queued, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("finding queued letter renders: %w", err)
		}
		var params []river.InsertManyParams
		for _, d := range depts {
			if !slices.Contains(queued, d) {
				params = append(params, river.InsertManyParams{Args: RenderLettersArgs{WaveID: waveID, Department: d}})
			}
		}
		if len(params) == 0 {
			return nil
		}
		_, err = client().InsertManyTx(ctx, tx, params)
		return err
	}
}

// RenderLettersWorker renders a wave's pending letters for one department.
type RenderLettersWorker struct {
	river.WorkerDefaults[RenderLettersArgs]
	deps *Deps
}

// Timeout is Deps.RenderTimeout: a batch of 5,000 pages many times over (a
// few seconds).
func (w *RenderLettersWorker) Timeout(*river.Job[RenderLettersArgs]) time.Duration {
	return w.deps.renderTimeout()
}

// DefaultRenderTimeout bounds a letter render.
const DefaultRenderTimeout = time.Minute

func (d *Deps) renderTimeout() time.Duration {
	if d.RenderTimeout > 0 {
		return d.RenderTimeout
	}
	return DefaultRenderTimeout
}

// Work renders the letters.
func (w *RenderLettersWorker) Work(ctx context.Context, job *river.Job[RenderLettersArgs]) error {
	d := w.deps
	dept := job.Args.Department
	if ready, err := w.batchReady(ctx, job.Args); err != nil {
		return err
	} else if !ready {
		return river.JobSnooze(letterWait)
	}
	waveDir := filepath.Join(d.LettersDir, fmt.Sprintf("wave-%d", job.Args.WaveID))
	if err := settleDepartmentFiles(ctx, d.Pool, waveDir, dept, d.Logger); err != nil {
		return err
	}
	n, err := notice.RenderLetterBatches(ctx, d.Store(), job.Args.WaveID, dept,
		func(batchID int64, ts []provisioning.Target) (*notice.LetterFile, error) {
			ns := make([]*notify.Notice, len(ts))
			hashes := map[int64][]byte{}
			for i := range ts {
				var h []byte
				if ns[i], h = noticeOf(&ts[i], d.Key, *ts[i].Deadline); h != nil {
					hashes[ts[i].AccountID] = h
				}
			}
			notify.SortForPost(ns)
			now := d.Clock.Now()
			b, err := notify.RenderLetters(ns, now, d.Letter)
			if err != nil {
				return nil, err
			}
			st, err := notify.StageBatch(waveDir, fmt.Sprintf("%s%06d", batchFilePrefix(dept), batchID), b)
			if err != nil {
				return nil, err
			}
			pages := make(map[int64]int, len(b.Manifest))
			for _, r := range b.Manifest {
				pages[r.NoticeID] = r.Page
			}
			return &notice.LetterFile{File: st.PDF, Manifest: st.Manifest, SHA256: b.SHA256, Pages: pages, CodeHashes: hashes,
				Publish: st.Publish, Discard: st.Discard}, nil
		}, notice.LetterOptions{PostDelay: d.PostDelay, Delivery: d.Delivery})
	if err != nil {
		return err
	}
	d.Metrics.countLetters(n)
	d.Logger.Info("letters rendered", "wave_id", job.Args.WaveID, "department", dept, "letters", n)
	return nil
}

// batchReady reports whether the department's letters should be rendered
// now: its wave has no notice chunk left to create letters, or a full batch
// is waiting. While the chunks run, the printer should get a few large files,
// not one per chunk. It watches the chunks for up to letterWait, so a render
// starts as soon as they end; false means snooze and let the queue's other
// departments be looked at.
func (w *RenderLettersWorker) batchReady(ctx context.Context, args RenderLettersArgs) (bool, error) {
	pool := w.deps.Pool
	busy, err := chunksOutstanding(ctx, pool, args.WaveID)
	if err != nil || !busy {
		return err == nil, err
	}
	pending, oldest, err := notice.PendingLetters(ctx, pool, args.WaveID, args.Department)
	if err != nil || pending >= notice.LetterBatchSize {
		return err == nil, err
	}
	// A chunk stuck under a dead worker, or failing, holds nobody's letter
	// back for long: letters waiting this long are rendered now, the rest
	// later.
	if pending > 0 && time.Since(oldest) > w.deps.maxLetterWait() {
		return true, nil
	}
	watch := time.NewTicker(letterPoll)
	defer watch.Stop()
	giveUp := time.After(letterWait)
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-giveUp:
			return false, nil
		case <-watch.C:
			if busy, err := chunksOutstanding(ctx, pool, args.WaveID); err != nil || !busy {
				return err == nil, err
			}
		}
	}
}

// letterWait is how long a render watches its wave's chunks before it
// snoozes for as long; within the second of ens worker --until-idle's
// look-ahead, so a waiting render keeps it running.
const letterWait = time.Second

// letterPoll is how often a waiting render looks at its wave's chunks: a
// render starts within this of the wave's last chunk. Each look reads the
// index of outstanding jobs (chunksOutstandingSQL), a few blocks at any
// wave size.
const letterPoll = 200 * time.Millisecond

// outstandingJobs selects a kind's jobs of a wave ($1, $2) that are not
// finished — the states of uniqueWhileOutstanding, written out so that
// PostgreSQL reads them from the index that holds only those jobs
// (river_job_outstanding_by_wave_idx, migration 033), never the wave's
// finished jobs.
const outstandingJobs = `FROM river_job WHERE kind = $1 AND args->>'wave_id' = $2::bigint::text
	AND state IN ('available', 'pending', 'scheduled', 'running', 'retryable')`

// chunksOutstandingSQL asks whether a wave has notice chunks still to work.
const chunksOutstandingSQL = `SELECT EXISTS (SELECT 1 ` + outstandingJobs + `)`

// queuedRendersSQL lists the departments whose letters render is queued
// for a wave and not finished.
const queuedRendersSQL = `SELECT DISTINCT args->>'department' ` + outstandingJobs

// chunksOutstanding reports whether a wave still has notice chunks to work.
func chunksOutstanding(ctx context.Context, db provisioning.DBTX, waveID int64) (bool, error) {
	var busy bool
	err := db.QueryRow(ctx, chunksOutstandingSQL, NotifyChunkArgs{}.Kind(), waveID).Scan(&busy)
	if err != nil {
		return false, fmt.Errorf("looking for the wave's notice chunks: %w", err)
	}
	return busy, nil
}
