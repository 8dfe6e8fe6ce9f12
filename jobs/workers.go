package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
)

// RenderLettersArgs renders the pending letters of one wave and department.
type RenderLettersArgs struct {
	WaveID     int64  `json:"wave_id"`
	Department string `json:"department"`
}

// Kind is stable: stored jobs refer to it.
func (RenderLettersArgs) Kind() string { return "render_letters" }

// InsertOpts: one render per wave and department queued or running at a time.
// Letters created while one runs are picked up by the sweep (QueueLetterSweep).
func (RenderLettersArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueLetters, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateScheduled,
			rivertype.JobStateRunning, rivertype.JobStateRetryable}}}
}

// PurgeArchiveArgs purges archives past their retention.
type PurgeArchiveArgs struct{}

// Kind is stable: stored jobs refer to it.
func (PurgeArchiveArgs) Kind() string { return "purge_archive" }

// InsertOpts puts purges on the maintenance queue.
func (PurgeArchiveArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance}
}

// Deps are what the workers need.
type Deps struct {
	Pool       *pgxpool.Pool
	Mailer     *notify.Mailer
	Key        optout.Key
	LettersDir string
	PostDelay  time.Duration
	// LetterRetention: a posted batch's PDF is deleted this long after its
	// posting day (default provisioning.DefaultLetterRetention).
	LetterRetention time.Duration
	// SettleEvery: each accepted email is recorded at once, so a crash
	// re-sends at most the messages in flight (same Message-ID, same code);
	// the accounts' move to notified and the audit event follow in groups of
	// this many, or when the chunk ends. Default DefaultSettleEvery.
	SettleEvery int
	// GiveUpAfter: a recipient's temporary refusals fall back to a letter
	// once they have lasted this long (default
	// provisioning.DefaultEmailGiveUpAfter). A failure of the relay itself
	// never does: sending pauses until it is back.
	GiveUpAfter time.Duration
	// ChunkTimeout bounds a notice chunk (default DefaultChunkTimeout; the
	// CLI raises it with a low ENS_SMTP_RATE), RenderTimeout a letter batch
	// (default DefaultRenderTimeout); MaxLetterWait is how long a letter
	// waits for its wave's other chunks (default DefaultMaxLetterWait).
	ChunkTimeout, RenderTimeout, MaxLetterWait time.Duration
	Clock                                      provisioning.Clock
	Logger                                     *slog.Logger
}

// DefaultChunkTimeout bounds a notice chunk: 20 s waiting for a failed
// relay, then 500 emails over a few connections, many times over.
const DefaultChunkTimeout = time.Minute

func (d *Deps) chunkTimeout() time.Duration {
	if d.ChunkTimeout > 0 {
		return d.ChunkTimeout
	}
	return DefaultChunkTimeout
}

// DefaultMaxLetterWait is how long a letter may wait for its wave's other
// chunks before it is rendered anyway.
const DefaultMaxLetterWait = time.Minute

func (d *Deps) maxLetterWait() time.Duration {
	if d.MaxLetterWait > 0 {
		return d.MaxLetterWait
	}
	return DefaultMaxLetterWait
}

func (d *Deps) giveUpAfter() time.Duration {
	if d.GiveUpAfter > 0 {
		return d.GiveUpAfter
	}
	return provisioning.DefaultEmailGiveUpAfter
}

// codeHash is the lookup hash of an account's opposition code.
func (d *Deps) codeHash(accountID int64) []byte {
	return d.Key.LookupHash(d.Key.Derive(accountID))
}

// DefaultSettleEvery is Deps.SettleEvery's default.
const DefaultSettleEvery = 100

// letterQueuer inserts render jobs in tx (provisioning gives it a short one of its own).
// Departments whose render is already queued are left out before the
// insert: River would skip them too, but only after waiting for any other
// transaction inserting the same unique job to end, and every chunk of a
// wave queues nearly every department.
func letterQueuer(client func() *river.Client[pgx.Tx]) provisioning.LetterFunc {
	return func(ctx context.Context, tx pgx.Tx, waveID int64, depts []string) error {
		var states []string
		for _, st := range (RenderLettersArgs{}).InsertOpts().UniqueOpts.ByState {
			states = append(states, string(st))
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT args->>'department' FROM river_job
			WHERE kind = $1 AND state::text = ANY($2) AND args @> jsonb_build_object('wave_id', $3::bigint)`,
			RenderLettersArgs{}.Kind(), states, waveID)
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
	if n, err := provisioning.SettleLeftovers(ctx, d.Pool, wave, a.FirstAccountID, a.LastAccountID, d.codeHash, d.Clock); err != nil {
		return err
	} else if n > 0 {
		d.Logger.Info("settled emails accepted before a crash", "wave_id", a.WaveID, "emails", n)
	}
	if wave.Paused() {
		return river.JobSnooze(pausedSnooze) // the operator paused the wave: no attempt spent
	}
	targets, err := provisioning.PrepareChunk(ctx, d.Pool, a.WaveID, a.FirstAccountID, a.LastAccountID, w.letters, d.Clock)
	if err != nil {
		return fmt.Errorf("preparing chunk: %w", err)
	}
	if len(targets) == 0 {
		return nil
	}
	res, err := w.dispatch(ctx, wave, targets)
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
		if _, err := provisioning.FallBackToLetter(ctx, d.Pool, ids, "failed", reason, w.letters, d.Clock); err != nil {
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
	settle := func(sent []provisioning.Sent) bool {
		return keep(provisioning.SettleAccepted(context.WithoutCancel(ctx), d.Pool, wave, sent, d.Clock))
	}
	work := make(chan *provisioning.Target)
	var wg sync.WaitGroup
	for range max(1, d.Mailer.Connections()) {
		wg.Go(func() {
			var accepted []provisioning.Sent
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
					s := wave.Accepted(t.NoticeID, t.AccountID, t.Kind, d.Clock.Now())
					s.Deadline = wave.TargetDeadline(t, s.At)
					s.RecipientHash = d.Mailer.RecipientHash(t.Email)
					failed = !keep(provisioning.MarkEmailsSent(context.WithoutCancel(ctx), d.Pool, wave, []provisioning.Sent{s}, d.Clock))
					mu.Lock()
					out.sent++
					mu.Unlock()
				case r.Outcome == notify.Accepted:
					s := wave.Accepted(t.NoticeID, t.AccountID, t.Kind, d.Clock.Now())
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
					failed = !keep(provisioning.RecordTemporaryFailure(context.WithoutCancel(ctx), d.Pool, t.NoticeID, r.Reason, d.Clock.Now()))
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

// marker records accepted emails for every sender of a worker process. Each
// sender waits until its email is recorded, so a crash re-sends at most one
// message per sender; the senders waiting at one moment share a statement
// (a group commit: the first to arrive records for all who queue meanwhile).
type marker struct {
	db      provisioning.DBTX
	mu      sync.Mutex
	queue   []markReq
	writing bool
	full    chan struct{} // the queue reached markBatch while a writer gathers
}

// A writer gathers for at most markWindow, or until markBatch senders wait,
// before it records: one statement then serves several messages (what
// PostgreSQL's commit_delay does for commits).
const (
	markWindow = 2 * time.Millisecond
	markBatch  = 16
)

func newMarker(db provisioning.DBTX) *marker {
	return &marker{db: db, full: make(chan struct{}, 1)}
}

type markReq struct {
	sent   provisioning.Sent
	result chan error
}

// record returns once s is recorded.
func (m *marker) record(s provisioning.Sent) error {
	r := markReq{sent: s, result: make(chan error, 1)}
	m.mu.Lock()
	m.queue = append(m.queue, r)
	if m.writing {
		if len(m.queue) >= markBatch {
			select {
			case m.full <- struct{}{}:
			default:
			}
		}
		m.mu.Unlock()
		return <-r.result
	}
	m.writing = true
	select {
	case <-m.full: // left by the previous writer's gathering
	default:
	}
	m.mu.Unlock()
	gather := time.NewTimer(markWindow)
	select {
	case <-m.full:
	case <-gather.C:
	}
	gather.Stop()
	m.mu.Lock()
	for len(m.queue) > 0 {
		batch := m.queue
		m.queue = nil
		m.mu.Unlock()
		sent := make([]provisioning.Sent, len(batch))
		for i, q := range batch {
			sent[i] = q.sent
		}
		err := provisioning.MarkEmailsAccepted(context.Background(), m.db, sent)
		for _, q := range batch {
			q.result <- err
		}
		m.mu.Lock()
	}
	m.writing = false
	m.mu.Unlock()
	return <-r.result
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

// noticeOf turns a target into what notify renders, with the lookup hash of
// its code (nil without one); the code is derived here, in memory, and goes
// nowhere else.
func noticeOf(t *provisioning.Target, key optout.Key, deadline time.Time) (*notify.Notice, []byte) {
	n := &notify.Notice{ID: t.NoticeID, AccountID: t.AccountID, Kind: notify.Kind(t.Kind), Channel: notify.Channel(t.Channel),
		FirstName: t.FirstName, LastName: t.LastName, Female: t.NIR.Female(), ForGuardian: t.ForGuardian,
		Deadline: deadline, Email: t.Email, AddressLines: t.Lines, Postcode: t.Postcode, City: t.City,
		Country: t.Country, Department: t.Department}
	if t.Kind != provisioning.NoticeOpposition && t.Kind != provisioning.NoticeResend && t.Kind != provisioning.NoticeCopy {
		return n, nil
	}
	code := key.Derive(t.AccountID)
	n.Code = code.String()
	return n, key.LookupHash(code)
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
	n, err := provisioning.RenderLetterBatches(ctx, d.Pool, job.Args.WaveID, dept,
		func(batchID int64, ts []provisioning.Target) (*provisioning.LetterFile, error) {
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
			b, err := notify.RenderLetters(ns, now)
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
			return &provisioning.LetterFile{File: st.PDF, Manifest: st.Manifest, SHA256: b.SHA256, Pages: pages, CodeHashes: hashes,
				Publish: st.Publish, Discard: st.Discard}, nil
		}, provisioning.LetterOptions{PostDelay: d.PostDelay, Clock: d.Clock})
	if err != nil {
		return err
	}
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
	pending, oldest, err := provisioning.PendingLetters(ctx, pool, args.WaveID, args.Department)
	if err != nil || pending >= provisioning.LetterBatchSize {
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

// letterPoll is how often a waiting render looks at its wave's chunks.
const letterPoll = 25 * time.Millisecond

// chunksOutstanding reports whether a wave still has notice chunks to work.
func chunksOutstanding(ctx context.Context, db provisioning.DBTX, waveID int64) (bool, error) {
	var busy bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = $1
		AND state IN ('available', 'pending', 'scheduled', 'running', 'retryable')
		AND args @> jsonb_build_object('wave_id', $2::bigint))`, NotifyChunkArgs{}.Kind(), waveID).Scan(&busy)
	if err != nil {
		return false, fmt.Errorf("looking for the wave's notice chunks: %w", err)
	}
	return busy, nil
}

// CloseWindowsWorker activates accounts whose window ended.
type CloseWindowsWorker struct {
	river.WorkerDefaults[CloseWindowsArgs]
	deps    *Deps
	letters provisioning.LetterFunc
	client  func() *river.Client[pgx.Tx]
}

// Work runs one sweep: ended windows closed, stray letters queued.
func (w *CloseWindowsWorker) Work(ctx context.Context, _ *river.Job[CloseWindowsArgs]) error {
	n, err := provisioning.CloseWindows(ctx, w.deps.Pool, w.deps.Clock, 0)
	if n > 0 {
		w.deps.Logger.Info("windows closed", "activated", n)
	}
	if err != nil {
		return err
	}
	if withheld, err := provisioning.WithheldActivations(ctx, w.deps.Pool, w.deps.Clock.Now()); err != nil {
		return err
	} else if withheld > 0 {
		w.deps.Logger.Warn("windows ended but accounts not activated: no proof their person was informed (letter not posted) or no code",
			"accounts", withheld)
	}
	if _, _, err := RecoverLetterFiles(ctx, w.deps.Pool, w.deps.LettersDir, stagedMaxAge, w.deps.Logger); err != nil {
		return err
	}
	if _, err := DeleteExpiredLetterFiles(ctx, w.deps.Pool, w.deps.LetterRetention, w.deps.Clock, w.deps.Logger); err != nil {
		return err
	}
	if _, err = SweepLetters(ctx, w.deps.Pool, w.letters); err != nil {
		return err
	}
	// Curators' copies of people told by letter wait for the letter.
	_, err = SweepFollowUps(ctx, w.deps.Pool, w.client())
	return err
}

// SweepFollowUps queues the follow-up emails' job when some are ready (a
// curator's copy whose person's letter has been rendered since); it says
// whether it did.
func SweepFollowUps(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx]) (bool, error) {
	var queued bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		queued, err = queueFollowUps(ctx, tx, client)
		return err
	})
	return queued, err
}

// queueFollowUps queues the follow-up emails' job in tx when some are
// ready; it says whether it did.
func queueFollowUps(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx]) (bool, error) {
	ready, err := provisioning.FollowUpsReady(ctx, tx)
	if err != nil || !ready {
		return false, err
	}
	if _, err := client.InsertTx(ctx, tx, SendExtensionsArgs{}, nil); err != nil {
		return false, fmt.Errorf("queueing follow-up emails: %w", err)
	}
	return true, nil
}

// SweepLetters queues a render for every wave and department that has
// pending letters; it returns how many groups it found.
func SweepLetters(ctx context.Context, pool *pgxpool.Pool, letters provisioning.LetterFunc) (int, error) {
	groups, err := provisioning.PendingLetterGroups(ctx, pool)
	if err != nil || len(groups) == 0 {
		return 0, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for w, depts := range groups {
			if err := letters(ctx, tx, w, depts); err != nil {
				return err
			}
		}
		return nil
	})
	return len(groups), err
}

// PurgeArchiveWorker purges archives past retention.
type PurgeArchiveWorker struct {
	river.WorkerDefaults[PurgeArchiveArgs]
	deps *Deps
}

// Work runs one purge.
func (w *PurgeArchiveWorker) Work(ctx context.Context, _ *river.Job[PurgeArchiveArgs]) error {
	res, err := provisioning.Purge(ctx, w.deps.Pool, w.deps.Key.NIRKey(), false, w.deps.Clock)
	if err == nil {
		w.deps.Logger.Info("archive purged", "due", res.Due, "purged", res.Purged)
	}
	return err
}

// SendExtensionsArgs sends the pending follow-up emails of every wave:
// extensions of a window, and codes re-sent (ens code resend).
type SendExtensionsArgs struct{}

// Kind is stable: stored jobs refer to it.
func (SendExtensionsArgs) Kind() string { return "send_extensions" }

// InsertOpts: one at a time.
func (SendExtensionsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotices, MaxAttempts: chunkMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
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
		targets, err := provisioning.PendingFollowUpEmails(ctx, d.Pool, 500, d.Clock.Now())
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
