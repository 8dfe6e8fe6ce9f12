package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// NotifyChunkArgs dispatches the notices of one chunk of a wave's accounts.
type NotifyChunkArgs struct {
	WaveID         int64 `json:"wave_id"`
	FirstAccountID int64 `json:"first_account_id"`
	LastAccountID  int64 `json:"last_account_id"`
}

// Kind is stable: stored jobs refer to it.
func (NotifyChunkArgs) Kind() string { return "notify_chunk" }

// InsertOpts puts notice chunks on their queue. A chunk is retried while
// some recipient defers its email, until the notice gives up
// (Deps.GiveUpAfter, 72 hours by default): with retries doubling from 10 s
// to at most an hour, 100 attempts last about 92 hours. A failed relay
// snoozes the chunk instead, which costs no attempt.
func (NotifyChunkArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotices, MaxAttempts: chunkMaxAttempts}
}

const chunkMaxAttempts = 100

// NotifyChunkWorker sends a chunk's email notices and queues its letters.
type NotifyChunkWorker struct {
	river.WorkerDefaults[NotifyChunkArgs]
	deps    *Deps
	letters provisioning.LetterFunc
	marks   *marker
	client  func() *river.Client[pgx.Tx]
}

// Timeout is Deps.ChunkTimeout: sized to the work (a chunk takes a second
// or a few), so that a dead worker's chunks are rescued within minutes.
func (w *NotifyChunkWorker) Timeout(*river.Job[NotifyChunkArgs]) time.Duration {
	return w.deps.chunkTimeout()
}

// Work dispatches one chunk, then records the chunk completed at once:
// River's completer would record it within 250 ms, and the wave's letter
// renders are waiting for its last chunk (chunksOutstanding).
func (w *NotifyChunkWorker) Work(ctx context.Context, job *river.Job[NotifyChunkArgs]) error {
	if err := w.work(ctx, job); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		// Curators' copies follow their people's notices out.
		if _, err := queueFollowUps(ctx, tx, w.client()); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording the chunk completed: %w", err)
	}
	return nil
}

func (w *NotifyChunkWorker) work(ctx context.Context, job *river.Job[NotifyChunkArgs]) error {
	d := w.deps
	a := job.Args
	wave, err := provisioning.GetWaveByID(ctx, d.Pool, a.WaveID)
	if err != nil {
		return err
	}
	// A crashed run may have left accepted emails unsettled: this job owns
	// these accounts, so it settles them before anything else.
	if n, err := notice.SettleLeftovers(ctx, d.Store(), wave, a.FirstAccountID, a.LastAccountID, d.codeHash); err != nil {
		return err
	} else if n > 0 {
		d.Logger.Info("settled emails accepted before a crash", "wave_id", a.WaveID, "emails", n)
	}
	if wave.Paused() {
		return river.JobSnooze(pausedSnooze) // the operator paused the wave: no attempt spent
	}
	targets, err := notice.PrepareChunk(ctx, d.Store(), a.WaveID, a.FirstAccountID, a.LastAccountID, w.letters)
	if err != nil {
		return fmt.Errorf("preparing chunk: %w", err)
	}
	if len(targets) == 0 {
		return nil
	}
	res, err := w.dispatch(ctx, wave, targets)
	d.Metrics.countEmails(res)
	d.Logger.Info("notice chunk dispatched", "wave_id", a.WaveID, "first_account_id", a.FirstAccountID,
		"sent", res.sent, "permanent", len(res.permanent), "temporary", res.temporary, "attempt", job.Attempt)
	return err
}

// dispatch sends targets' emails, switches permanent failures and exhausted
// retries to letters, and returns an error (so River retries the job with
// backoff) while some emails were only temporarily refused. Accepted emails
// are recorded and are never sent again on retry.
func (w *NotifyChunkWorker) dispatch(ctx context.Context, wave *provisioning.Wave, targets []provisioning.Target) (sendOutcome, error) {
	d := w.deps
	if d.Mailer == nil {
		return sendOutcome{}, errors.New("emails to send but no SMTP server configured (SMTP_URL)")
	}
	// While the relay is down this worker takes no more notice jobs: the
	// job holds its slot while the prober waits for the relay, then
	// snoozes (which costs the job no attempt).
	if !d.Mailer.WaitRelay(ctx, relayHold) {
		return sendOutcome{relayDown: true}, river.JobSnooze(relaySnooze)
	}
	res := w.send(ctx, wave, targets)
	if res.err != nil {
		return res, res.err
	}
	for reason, ids := range map[string][]int64{"smtp permanent refusal": res.permanent, "temporary failures outlasted " + d.giveUpAfter().String(): res.exhausted} {
		if len(ids) == 0 {
			continue
		}
		if _, err := notice.FallBackToLetter(ctx, d.Store(), ids, "failed", reason, w.letters); err != nil {
			return res, err
		}
	}
	if res.relayDown {
		return res, river.JobSnooze(relaySnooze)
	}
	if res.temporary > 0 {
		return res, fmt.Errorf("%d email(s) temporarily refused (%s); will retry", res.temporary, res.lastReason)
	}
	return res, nil
}

// pausedSnooze is how often a paused wave's chunks look again; beyond
// ens worker --until-idle's look-ahead, so a paused wave lets it end.
const pausedSnooze = 30 * time.Second

// relayHold is how long a notice job waits for a failed relay before it
// snoozes for relaySnooze, which is within the second of ens worker
// --until-idle's look-ahead: a relay outage keeps it running.
const (
	relayHold   = 20 * time.Second
	relaySnooze = 500 * time.Millisecond
)

type sendOutcome struct {
	sent, temporary      int
	permanent, exhausted []int64
	relayDown            bool // some emails were not tried: the relay failed
	lastReason           string
	err                  error
}

// send renders and sends the chunk's emails over the mailer's connections in
// parallel. Each goroutine records every accepted email before it sends the
// next, and settles the accounts of its accepted emails in groups of
// SettleEvery, outside any shared lock, so a commit never stalls the other
// connections.
func (w *NotifyChunkWorker) send(ctx context.Context, wave *provisioning.Wave, targets []provisioning.Target) sendOutcome {
	d := w.deps
	every := d.SettleEvery
	if every <= 0 {
		every = DefaultSettleEvery
	}
	var (
		mu  sync.Mutex // guards out
		out sendOutcome
	)
	keep := func(err error) bool {
		if err != nil {
			mu.Lock()
			if out.err == nil {
				out.err = err
			}
			mu.Unlock()
		}
		return err == nil
	}
	settle := func(sent []notice.Sent) bool {
		return keep(notice.SettleAccepted(context.WithoutCancel(ctx), d.Store(), wave, sent))
	}
	work := make(chan *provisioning.Target)
	var wg sync.WaitGroup
	for range max(1, d.Mailer.Connections()) {
		wg.Go(func() {
			var accepted []notice.Sent
			failed := false // the database refused a record: send nothing more
			for t := range work {
				if failed {
					continue
				}
				r, codeHash := w.sendOne(ctx, wave, t)
				switch {
				case r.Outcome == notify.RelayDown:
					// Nothing is known of this recipient: no attempt counted.
					mu.Lock()
					out.relayDown = true
					mu.Unlock()
				case r.Outcome == notify.Accepted && t.Kind != provisioning.NoticeOpposition && t.Kind != provisioning.NoticeInformation:
					// A follow-up (extension, resend, curator's copy): the
					// account is notified already.
					s := notice.Accepted(wave, t.NoticeID, t.AccountID, t.Kind, d.Clock.Now())
					s.Deadline = wave.TargetDeadline(t, s.At)
					s.RecipientHash = d.Mailer.RecipientHash(t.Email)
					failed = !keep(notice.MarkEmailsSent(context.WithoutCancel(ctx), d.Store(), wave, []notice.Sent{s}))
					mu.Lock()
					out.sent++
					mu.Unlock()
				case r.Outcome == notify.Accepted:
					s := notice.Accepted(wave, t.NoticeID, t.AccountID, t.Kind, d.Clock.Now())
					s.CodeHash = codeHash
					s.RecipientHash = d.Mailer.RecipientHash(t.Email)
					if !keep(w.marks.record(s)) {
						failed = true
						continue
					}
					accepted = append(accepted, s)
					if len(accepted) >= every {
						failed = !settle(accepted)
						mu.Lock()
						out.sent += len(accepted)
						mu.Unlock()
						accepted = nil
					}
				case r.Outcome == notify.Permanent:
					mu.Lock()
					out.permanent = append(out.permanent, t.NoticeID)
					mu.Unlock()
				case t.FirstFailedAt != nil && d.Clock.Now().Sub(*t.FirstFailedAt) >= d.giveUpAfter():
					mu.Lock()
					out.exhausted = append(out.exhausted, t.NoticeID)
					mu.Unlock()
				default:
					failed = !keep(notice.RecordTemporaryFailure(context.WithoutCancel(ctx), d.Pool, t.NoticeID, r.Reason, d.Clock.Now()))
					mu.Lock()
					out.temporary++
					out.lastReason = r.Reason
					mu.Unlock()
				}
			}
			settle(accepted)
			mu.Lock()
			out.sent += len(accepted)
			mu.Unlock()
		})
	}
	for i := range targets {
		if ctx.Err() != nil {
			break
		}
		work <- &targets[i]
	}
	close(work)
	wg.Wait()
	if out.err == nil && ctx.Err() != nil {
		out.err = ctx.Err()
	}
	return out
}

// sendOne renders and sends t's email; it returns the lookup hash of the
// code the email carries (nil without one), to store once it is accepted.
func (w *NotifyChunkWorker) sendOne(ctx context.Context, wave *provisioning.Wave, t *provisioning.Target) (notify.SendResult, []byte) {
	d := w.deps
	n, codeHash := noticeOf(t, d.Key, wave.TargetDeadline(t, d.Clock.Now()))
	e, err := notify.RenderEmail(n)
	if err != nil {
		return notify.SendResult{Outcome: notify.Temporary, Reason: "render error"}, nil
	}
	msg, err := d.Mailer.Build(t.NoticeID, wave.ID, t.Email, e)
	if err != nil {
		return notify.SendResult{Outcome: notify.Permanent, Reason: "address refused"}, nil
	}
	return d.Mailer.Send(ctx, msg), codeHash
}
