package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

// Queue names. Notices have their own queue so that a slow SMTP server never
// holds up window closing or purges.
const (
	QueueNotices     = "notices"
	QueueLetters     = "letters"
	QueueMaintenance = "maintenance"
)

// DefaultNoticeWorkers is how many notice chunks a worker works at once: a
// chunk waits on PostgreSQL and the SMTP server most of its time (on 2
// cores, 4 sent a 100,000-person wave in 35.6 s, 8 in 22–27 s).
const DefaultNoticeWorkers = 8

// DefaultLetterWorkers is how many letter batches a worker renders at once:
// one more than the cores of the reference machine, since each batch also
// waits on PostgreSQL and the disk (3 rendered 6% more pages per second
// than 2 in the letters bench; 4 no more than 3).
const DefaultLetterWorkers = 3

// Config tunes the River client. Every field has a default suited to one
// worker process on 2 cores; raise them deliberately for large waves (River
// fetches at most MaxWorkers jobs per FetchCooldown per queue).
type Config struct {
	NoticeWorkers      int           // default DefaultNoticeWorkers
	LetterWorkers      int           // default DefaultLetterWorkers
	MaintenanceWorkers int           // default 2
	FetchCooldown      time.Duration // default 50ms
	FetchPollInterval  time.Duration // default 1s
	// CompletedRetention: finished jobs are deleted after this (default 24h),
	// so tens of millions of them do not pile up.
	CompletedRetention time.Duration
	// RetryBase is the first retry delay; attempt n waits RetryBase·2^(n-1),
	// capped at one hour (default 10s).
	RetryBase time.Duration
	// RescueAfter: a job still running this long was its worker's when it
	// died, and is made available again (default: the longest job timeout
	// plus half a minute, so a job still being worked is never rescued).
	RescueAfter time.Duration
	// Periodic enables the periodic sweeps (window closing, purge).
	Periodic      bool
	SweepInterval time.Duration // default 1 minute
	PurgeInterval time.Duration // default 24h; also continuous enrolment's
	PushInterval  time.Duration // default 5s: how often the change feed is pushed
	Logger        *slog.Logger
	ID            string
}

func (c *Config) defaults() {
	if c.NoticeWorkers <= 0 {
		c.NoticeWorkers = DefaultNoticeWorkers
	}
	if c.LetterWorkers <= 0 {
		c.LetterWorkers = DefaultLetterWorkers
	}
	if c.MaintenanceWorkers <= 0 {
		c.MaintenanceWorkers = 2
	}
	if c.FetchCooldown <= 0 {
		c.FetchCooldown = 50 * time.Millisecond
	}
	if c.FetchPollInterval <= 0 {
		c.FetchPollInterval = time.Second
	}
	if c.CompletedRetention <= 0 {
		c.CompletedRetention = 24 * time.Hour
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 10 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Minute
	}
	if c.PurgeInterval <= 0 {
		c.PurgeInterval = 24 * time.Hour
	}
	if c.PushInterval <= 0 {
		c.PushInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// retryPolicy backs off exponentially from a configurable base.
type retryPolicy struct{ base time.Duration }

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := p.base << min(job.Attempt-1, 20)
	return time.Now().Add(min(d, time.Hour))
}

// NewInsertClient returns a client that only inserts jobs (wave launches).
func NewInsertClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("creating River insert client: %w", err)
	}
	return c, nil
}

// Enqueuer inserts one notify_chunk job per chunk in the launch's
// transaction, so accounts and the jobs that notify them commit together.
func Enqueuer(client *river.Client[pgx.Tx]) provisioning.EnqueueFunc {
	return func(ctx context.Context, tx pgx.Tx, chunks []provisioning.Chunk) error {
		params := make([]river.InsertManyParams, len(chunks))
		for i, c := range chunks {
			params[i] = river.InsertManyParams{Args: NotifyChunkArgs{WaveID: c.WaveID, FirstAccountID: c.FirstAccountID, LastAccountID: c.LastAccountID}}
			if !c.NotBefore.IsZero() { // a wave spread over days, or starting later
				params[i].InsertOpts = &river.InsertOpts{ScheduledAt: c.NotBefore}
			}
		}
		_, err := client.InsertManyFastTx(ctx, tx, params)
		return err
	}
}

// RetryWave queues notice chunks again for the wave's pending accounts that
// no chunk job reaches any more (their chunk was discarded).
func RetryWave(ctx context.Context, st *provisioning.Store, client *river.Client[pgx.Tx], name, actor string) (int64, error) {
	states := []string{string(rivertype.JobStateAvailable), string(rivertype.JobStatePending), string(rivertype.JobStateScheduled),
		string(rivertype.JobStateRunning), string(rivertype.JobStateRetryable)}
	return wave.Retry(ctx, st, name, actor, NotifyChunkArgs{}.Kind(), states, Enqueuer(client))
}
