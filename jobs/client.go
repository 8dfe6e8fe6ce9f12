package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ens-sante/ens/provisioning"
)

// Register adds every worker to workers. client returns the running client,
// for workers that insert follow-up jobs in their own transactions.
func Register(workers *river.Workers, deps *Deps, client func() *river.Client[pgx.Tx]) {
	letters := letterQueuer(client)
	chunk := &NotifyChunkWorker{deps: deps, letters: letters, marks: newMarker(deps.Pool), client: client}
	river.AddWorker(workers, chunk)
	river.AddWorker(workers, &SendExtensionsWorker{deps: deps, chunk: chunk})
	river.AddWorker(workers, &RenderLettersWorker{deps: deps})
	river.AddWorker(workers, &CloseWindowsWorker{deps: deps, letters: letters, client: client})
	river.AddWorker(workers, &PurgeArchiveWorker{deps: deps})
	river.AddWorker(workers, &EnrolWorker{deps: deps, client: client})
	river.AddWorker(workers, &ComingOfAgeWorker{deps: deps, client: client})
	river.AddWorker(workers, &PushChangesWorker{deps: deps})
}

// uniqueWhileOutstanding is the ByState of every unique job: one is not
// queued again while another is available, pending, scheduled, retrying or
// running. River refuses a ByState without the running and queued states
// (its periodic enqueuer then never queues the job), so every job shares
// this one list.
var uniqueWhileOutstanding = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable}

// rescueAfter is Config.RescueAfter, or the longest job timeout plus half a
// minute: River's rescuer (every 30 s, and never before a job's own
// timeout) then brings a dead worker's jobs back within about two minutes,
// never one still being worked.
func (c *Config) rescueAfter(deps *Deps) time.Duration {
	if c.RescueAfter > 0 {
		return c.RescueAfter
	}
	return max(deps.chunkTimeout(), deps.renderTimeout(), time.Minute) + 30*time.Second
}

// LetterQueuer returns the function that queues letter renders through client.
func LetterQueuer(client *river.Client[pgx.Tx]) provisioning.LetterFunc {
	return letterQueuer(func() *river.Client[pgx.Tx] { return client })
}

// NewClient builds a River client that works every queue.
func NewClient(deps *Deps, cfg Config) (*river.Client[pgx.Tx], error) {
	cfg.defaults()
	if deps.Logger == nil {
		deps.Logger = cfg.Logger
	}
	var client *river.Client[pgx.Tx]
	workers := river.NewWorkers()
	Register(workers, deps, func() *river.Client[pgx.Tx] { return client })
	rc := &river.Config{
		ID:     cfg.ID,
		Logger: cfg.Logger,
		Queues: map[string]river.QueueConfig{
			QueueNotices: {MaxWorkers: cfg.NoticeWorkers},
			// Letter jobs are few and short at the scale of one department
			// of a small wave: the shared cooldown would idle the workers
			// between them (at most MaxWorkers jobs per cooldown).
			QueueLetters:     {MaxWorkers: cfg.LetterWorkers, FetchCooldown: letterFetchCooldown},
			QueueMaintenance: {MaxWorkers: cfg.MaintenanceWorkers},
		},
		FetchCooldown:               cfg.FetchCooldown,
		FetchPollInterval:           cfg.FetchPollInterval,
		CompletedJobRetentionPeriod: cfg.CompletedRetention,
		RetryPolicy:                 retryPolicy{base: cfg.RetryBase},
		Workers:                     workers,
		JobTimeout:                  min(time.Minute, cfg.rescueAfter(deps)),
		RescueStuckJobsAfter:        cfg.rescueAfter(deps),
		// REINDEX needs the tables' owner: the application role is not
		// (provisioning.GrantApp). The DBA's maintenance reindexes.
		ReindexerIndexNames: []string{},
	}
	if deps.Metrics != nil {
		rc.Middleware = []rivertype.Middleware{deps.Metrics.middleware()}
	}
	if cfg.Periodic {
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.SweepInterval),
				func() (river.JobArgs, *river.InsertOpts) { return CloseWindowsArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true, ID: "close_windows"}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.PurgeInterval),
				func() (river.JobArgs, *river.InsertOpts) { return PurgeArchiveArgs{}, nil },
				&river.PeriodicJobOpts{ID: "purge_archive"}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.PurgeInterval),
				func() (river.JobArgs, *river.InsertOpts) { return EnrolArgs{}, nil },
				&river.PeriodicJobOpts{ID: "enrol"}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.PurgeInterval),
				func() (river.JobArgs, *river.InsertOpts) { return ComingOfAgeArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true, ID: "coming_of_age"}),
		}
		if deps.Platform != nil {
			rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(cfg.PushInterval),
				func() (river.JobArgs, *river.InsertOpts) { return PushChangesArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true, ID: "push_changes"}))
		}
	}
	c, err := river.NewClient(riverpgxv5.New(deps.Pool), rc)
	if err != nil {
		return nil, fmt.Errorf("creating River client: %w", err)
	}
	client = c
	return c, nil
}

// Outstanding counts jobs that are due or will be retried: what
// `ens worker --until-idle` waits for. Jobs scheduled beyond horizon (a
// periodic job's next run) do not count.
func Outstanding(ctx context.Context, deps *Deps, horizon time.Duration) (int64, error) {
	var n int64
	err := deps.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'pending')
		   OR (state = 'scheduled' AND scheduled_at <= now() + $1::interval)`, horizon).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting outstanding jobs: %w", err)
	}
	return n, nil
}

// Finished counts the jobs finished (completed, cancelled or discarded)
// since a moment: with Outstanding, how far a run has got.
func Finished(ctx context.Context, deps *Deps, since time.Time) (int64, error) {
	var n int64
	if err := deps.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE finalized_at >= $1`, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting finished jobs: %w", err)
	}
	return n, nil
}

const letterFetchCooldown = 5 * time.Millisecond
