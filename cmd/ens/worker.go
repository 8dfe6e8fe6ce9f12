package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/feed"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/wave"
	"github.com/ens-sante/ens/provisioning/window"
)

func (a *app) workerCommand() *cobra.Command {
	var untilIdle bool
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Work the job queues (notices, letters, window closing, purge); SIGINT/SIGTERM stop it gracefully",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.warnUnkeyed()
			return a.runWorker(cmd.Context(), untilIdle)
		},
	}
	cmd.Flags().BoolVar(&untilIdle, "until-idle", false, "work everything due now (retries included, ended windows closed), then exit")
	cmd.Flags().StringVar(&a.cfg.HealthAddr, "health-addr", a.cfg.HealthAddr, "serve /healthz, /readyz and the worker's /metrics on this address (ENS_HEALTH_ADDR; empty: off)")
	cmd.Flags().IntVar(&a.cfg.SMTPConnections, "smtp-connections", a.cfg.SMTPConnections, "SMTP connections kept open (ENS_SMTP_CONNECTIONS)")
	cmd.Flags().Float64Var(&a.cfg.SMTPRate, "smtp-rate", a.cfg.SMTPRate, "at most this many emails per second, 0: no cap (ENS_SMTP_RATE)")
	cmd.Flags().IntVar(&a.cfg.NoticeWorkers, "notice-workers", a.cfg.NoticeWorkers, "notice chunks worked at once (ENS_NOTICE_WORKERS)")
	cmd.Flags().IntVar(&a.cfg.LetterWorkers, "letter-workers", a.cfg.LetterWorkers, "letter batches rendered at once (ENS_LETTER_WORKERS)")
	cmd.Flags().Var((*durationFlag)(&a.cfg.PostDelay), "post-delay", "print-and-post delay added to a letter's deadline, e.g. 5d (ENS_POST_DELAY)")
	return cmd
}

// workerDeps builds what workers need from the configuration.
func (a *app) workerDeps(ctx context.Context) (*jobs.Deps, error) {
	c := a.cfg
	letter, err := c.letterInfo()
	if err != nil {
		return nil, usageError(err)
	}
	pool, err := a.db(ctx, int32(c.NoticeWorkers+c.LetterWorkers+c.SMTPConnections+6)) //nolint:gosec // each bounded by the configuration
	if err != nil {
		return nil, err
	}
	key, err := c.codeKey()
	if err != nil {
		return nil, usageError(err)
	}
	deps := &jobs.Deps{Pool: pool, AuditKey: a.auditKey, Key: key, LettersDir: c.lettersDir(), Letter: letter,
		PostDelay: c.PostDelay, Delivery: c.Delivery, Clock: a.clock, Logger: a.log, GiveUpAfter: c.EmailGiveUpAfter, LetterRetention: c.LetterRetention,
		ActivationGrace: c.ActivationGrace, PostingSLA: c.PostingSLA, EnrolDailyCap: int64(c.EnrolDailyCap)}
	if c.PlatformURL != "" {
		deps.Platform = &notify.Platform{URL: c.PlatformURL, Key: c.PlatformKey}
	}
	if c.SMTPRate > 0 {
		// A capped rate shares its messages among the notice workers: a chunk
		// may wait its turn, and must not time out meanwhile.
		perChunk := time.Duration(float64(c.NoticeWorkers*provisioning.DefaultChunkSize) / c.SMTPRate * float64(time.Second))
		deps.ChunkTimeout = max(jobs.DefaultChunkTimeout, 2*perChunk+20*time.Second)
	}
	if c.SMTPURL != "" {
		cfg, err := a.smtpConfig(key)
		if err != nil {
			return nil, usageError(err)
		}
		cfg.Connections, cfg.Rate = c.SMTPConnections, c.SMTPRate
		host, _ := os.Hostname()
		a.workerID = fmt.Sprintf("%s-%d", host, os.Getpid())
		cfg.OnRelayChange = jobs.RelayRecorder(pool, a.workerID, a.log)
		m, err := notify.NewMailer(cfg)
		if err != nil {
			return nil, usageError(err)
		}
		if err := m.Check(ctx); err != nil {
			m.Close()
			return nil, err
		}
		cfg.OnRelayChange(m.RelayState())
		deps.Mailer = m
	}
	return deps, nil
}

// stopGrace is how long a stopping worker lets its running jobs end.
const stopGrace = 30 * time.Second

func (a *app) runWorker(ctx context.Context, untilIdle bool) error {
	deps, err := a.workerDeps(ctx)
	if err != nil {
		return err
	}
	if deps.Mailer != nil {
		defer deps.Mailer.Close()
		defer notice.ForgetRelayState(context.WithoutCancel(ctx), deps.Pool, a.workerID) //nolint:errcheck // best effort
	}
	if _, _, err := jobs.RecoverLetterFiles(ctx, deps.Pool, deps.LettersDir, time.Hour, a.log); err != nil {
		return err
	}
	if a.cfg.Enrol {
		if _, err := wave.SetEnrolment(ctx, deps.Store().At(a.clock), true, "ENS_ENROL=on ("+a.workerID+")"); err != nil {
			return err
		}
	}
	jobs.TuneGC()
	if path := a.cfg.CPUProfile; path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	cfg := jobs.Config{NoticeWorkers: a.cfg.NoticeWorkers, LetterWorkers: a.cfg.LetterWorkers, Periodic: !untilIdle, Logger: a.log,
		RetryBase: a.cfg.RetryBase}
	health := newWorkerHealth(deps)
	client, err := jobs.NewClient(deps, cfg)
	if err != nil {
		return err
	}
	if a.cfg.HealthAddr != "" {
		if err := a.serveHealth(ctx, a.cfg.HealthAddr, health); err != nil {
			return err
		}
	}
	// A signal stops the worker gracefully: its running jobs may end (a
	// chunk's emails settled, a letter batch committed and published)
	// within stopGrace; only then are they cancelled. Started with the
	// signal's context, River would cancel them at once.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting River client: %w", err)
	}
	health.running.Store(true)
	defer health.running.Store(false)
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		defer cancel()
		if err := client.Stop(sctx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		a.log.Warn("jobs still running after the grace period: cancelled", "grace", stopGrace)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return client.StopAndCancel(cctx)
	}
	a.log.Info("worker started", "until_idle", untilIdle, "smtp", deps.Mailer != nil)
	if !untilIdle {
		<-ctx.Done()
		a.log.Info("worker stopping")
		return stop()
	}
	err = a.untilIdle(ctx, deps, client, a.cfg.DBWait)
	return errors.Join(err, stop())
}

// startCPUProfile writes the process's CPU profile to path until the
// returned function is called (ENS_CPU_PROFILE: where a wave's time goes).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("ENS_CPU_PROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("ENS_CPU_PROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// untilIdle waits until no job is due or awaiting retry, closes the windows
// that ended, and repeats until both find nothing. It rides out the
// database being unreachable (a restart, a failover) for up to dbWait.
func (a *app) untilIdle(ctx context.Context, deps *jobs.Deps, client *river.Client[pgx.Tx], dbWait time.Duration) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	quiet := 0
	followedUp := false
	start := time.Now()
	db := &dbWaiter{limit: dbWait, log: a.log}
	var progress func(done, total int64)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		n, err := jobs.Outstanding(ctx, deps, time.Second)
		if err != nil {
			if err = db.wait(err); err != nil {
				return err
			}
			continue
		}
		db.up()
		if progress == nil {
			// Jobs queue more jobs (chunks queue letter renders): the total grows.
			progress = a.progressOf("jobs worked", n)
		}
		if n > 0 {
			quiet = 0
			done, err := jobs.Finished(ctx, deps, start)
			if err != nil {
				if err = db.wait(err); err != nil {
					return err
				}
				continue
			}
			progress(done, done+n)
			continue
		}
		if quiet++; quiet < 3 {
			continue // jobs inserted by a finishing transaction show a moment later
		}
		renotified, err := wave.RenotifyComingOfAge(ctx, deps.Store(), jobs.Enqueuer(client))
		if err != nil {
			if err = db.wait(err); err != nil {
				return err
			}
			continue
		}
		if renotified > 0 {
			a.log.Info("people told as minors came of age: told again, themselves", "accounts", renotified)
			continue
		}
		closed, err := window.Close(ctx, deps.Store(), deps.ActivationGrace, 0)
		if err != nil {
			if err = db.wait(err); err != nil {
				return err
			}
			continue
		}
		if closed > 0 {
			a.log.Info("windows closed", "activated", closed)
		}
		groups, err := jobs.SweepLetters(ctx, deps.Pool, jobs.LetterQueuer(client))
		if err != nil {
			if err = db.wait(err); err != nil {
				return err
			}
			continue
		}
		if groups > 0 {
			continue
		}
		// Once the renders are done: curators' copies of people told by
		// letter (once per run; a copy the relay keeps refusing is the
		// periodic sweep's).
		if !followedUp {
			followUps, err := jobs.SweepFollowUps(ctx, deps.Pool, client)
			if err != nil {
				if err = db.wait(err); err != nil {
					return err
				}
				continue
			}
			if followedUp = true; followUps {
				continue
			}
		}
		// Last, the platform is told everything the run changed (while it
		// does not answer, the push is retried and the run goes on).
		if deps.Platform != nil {
			push, err := feed.PushState(ctx, deps.Pool)
			if err != nil {
				if err = db.wait(err); err != nil {
					return err
				}
				continue
			}
			if push.Lag() > 0 {
				if _, err := client.Insert(ctx, jobs.PushChangesArgs{}, nil); err != nil {
					return fmt.Errorf("queueing the platform push: %w", err)
				}
				continue
			}
		}
		if n, err = jobs.Outstanding(ctx, deps, time.Second); err == nil && n == 0 {
			a.log.Info("worker idle: nothing left to do")
			return nil
		} else if err != nil {
			if err = db.wait(err); err != nil {
				return err
			}
		}
	}
}

// dbWaiter tells a database that is down (waited out, logged once when it
// goes and once when it is back) from a statement that failed.
type dbWaiter struct {
	limit time.Duration
	log   *slog.Logger
	since time.Time // zero while the database answers
}

// wait returns nil while err is the database being unreachable for less
// than the limit; otherwise err, explained.
func (w *dbWaiter) wait(err error) error {
	if !provisioning.DatabaseUnavailable(err) {
		return err
	}
	if w.since.IsZero() {
		w.since = time.Now()
		w.log.Warn("database unreachable: waiting for it", "up_to", w.limit.String(), "error", err)
	}
	if time.Since(w.since) > w.limit {
		return fmt.Errorf("the database was unreachable for more than %s (ENS_DB_WAIT): %w", w.limit, err)
	}
	return nil
}

// up records that the database answered.
func (w *dbWaiter) up() {
	if !w.since.IsZero() {
		w.log.Info("database back: resuming", "after", time.Since(w.since).Round(time.Second).String())
		w.since = time.Time{}
	}
}

// smtpConfig gives the mail settings every sending command shares: the
// relay, the sender, the bounce address, the DKIM key; key tags bounce
// addresses.
func (a *app) smtpConfig(key optout.Key) (notify.SMTPConfig, error) {
	c := a.cfg
	cfg := notify.SMTPConfig{URL: c.SMTPURL, From: c.MailFrom, Key: key.MailKey(), BounceAddress: c.BounceAddress, DKIMSelector: c.DKIMSelector}
	if f := c.DKIMKeyFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("reading ENS_DKIM_KEY_FILE: %w", err)
		}
		cfg.DKIMKeyPEM = pem
	}
	return cfg, nil
}
