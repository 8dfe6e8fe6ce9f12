package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultWindow is the six-week opposition window.
const DefaultWindow = 42 * 24 * time.Hour

// ErrWaveMismatch: a wave is relaunched with other criteria than its own.
var ErrWaveMismatch = errors.New("a wave with this name exists with other criteria")

// Wave is a named selection of people launched by an operator (SPEC §2).
type Wave struct {
	ID            int64      `json:"id"`
	Name          string     `json:"name"`
	LaunchedBy    string     `json:"launched_by"`
	LaunchedAt    time.Time  `json:"launched_at"`
	Departments   []string   `json:"departments"`
	BornFrom      *int       `json:"born_from"`
	BornTo        *int       `json:"born_to"`
	Limit         *int64     `json:"limit"`
	Window        Window     `json:"window"`
	ExtendedUntil *time.Time `json:"extended_until"`
	Created       int64      `json:"created"`
	CompletedAt   *time.Time `json:"completed_at"`
	// PausedAt: an operator paused its dispatch; CancelledAt: cancelled.
	PausedAt    *time.Time `json:"paused_at,omitempty"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	// PerDay caps the notices dispatched a day; StartAt is when dispatch
	// starts (schedule.go).
	PerDay  *int64     `json:"per_day,omitempty"`
	StartAt *time.Time `json:"start_at,omitempty"`
}

// Paused reports whether the wave's notice jobs must wait: paused and not
// cancelled (a cancelled wave's jobs run, and find nobody left to tell).
func (w *Wave) Paused() bool { return w.PausedAt != nil && w.CancelledAt == nil }

// Window is a wave's opposition window length.
type Window time.Duration

// ParseWindow reads "42d", "3d12h" or any Go duration ("90s", "2h").
func ParseWindow(s string) (Window, error) {
	s = strings.TrimSpace(s)
	var days int
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("window %q: %w", s, err)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("window: %w", err)
		}
		rest = d
	}
	w := Window(time.Duration(days)*24*time.Hour + rest)
	if w <= 0 {
		return 0, errors.New("window must be positive")
	}
	return w, nil
}

// String renders whole days as "42d", anything else as a Go duration.
func (w Window) String() string {
	d := time.Duration(w)
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// MarshalText makes a Window print as its String in JSON.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// Rehearsal reports whether the window is shorter than the legal six weeks;
// reports show it.
func (w Window) Rehearsal() bool { return time.Duration(w) < DefaultWindow }

// Deadline is the last moment an opposition counts for a notice dispatched at
// dispatch: for a window of whole days, 23:59:59 Europe/Paris of dispatch day
// + the days; for a shorter rehearsal window, dispatch + window. A wave's
// extension can only push it later.
func (w *Wave) Deadline(dispatch time.Time) time.Time {
	d := time.Duration(w.Window)
	var end time.Time
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		end = EndOfDay(dispatch.In(Paris).AddDate(0, 0, int(d/(24*time.Hour))))
	} else {
		end = dispatch.Add(d)
	}
	if w.ExtendedUntil != nil && w.ExtendedUntil.After(end) {
		end = *w.ExtendedUntil
	}
	return end
}

// DefaultChunkSize is how many accounts one notice job covers.
const DefaultChunkSize = 500

// NoticeDeadline is the deadline a notice of kind dispatched at states: an
// extension notice states exactly the day the operator chose; any other
// notice, Deadline.
func (w *Wave) NoticeDeadline(kind string, dispatch time.Time) time.Time {
	if kind == NoticeExtension && w.ExtendedUntil != nil {
		return *w.ExtendedUntil
	}
	return w.Deadline(dispatch)
}

// TargetDeadline is the deadline t's notice states when dispatched at: a
// re-sent code or a curator's copy states its account's deadline, unchanged
// (t.Deadline, read with it); any other notice, NoticeDeadline.
func (w *Wave) TargetDeadline(t *Target, dispatch time.Time) time.Time {
	if (t.Kind == NoticeResend || t.Kind == NoticeCopy) && t.Deadline != nil {
		return *t.Deadline
	}
	return w.NoticeDeadline(t.Kind, dispatch)
}

// WaveSpec is what an operator asks for when launching a wave.
type WaveSpec struct {
	Name        string
	Departments []string
	BornFrom    int // 0: no bound
	BornTo      int
	Limit       int64 // 0: no limit
	Window      Window
	Actor       string
	PerDay      int64      // 0: no cap
	StartAt     *time.Time // nil: at once
}

// Chunk is a contiguous range of one wave's account ids whose notices one job
// dispatches. Job arguments carry these ids only, never personal data.
type Chunk struct {
	WaveID         int64
	FirstAccountID int64
	LastAccountID  int64
	NotBefore      time.Time // zero: now
}

// EnqueueFunc inserts the jobs for chunks inside tx, the transaction that
// created their accounts (the jobs package wires River's InsertManyTx).
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, chunks []Chunk) error

// LaunchOptions tunes a launch.
type LaunchOptions struct {
	BatchSize int // people scanned per transaction; default 10,000
	ChunkSize int // accounts per notice job; default 500
	Clock     Clock
	Progress  func(created int64)
	// Audit can be turned off only to measure its cost (make bench).
	NoAudit bool
}

// LaunchResult says what a launch (or relaunch) did.
type LaunchResult struct {
	Wave     *Wave         `json:"wave"`
	Created  int64         `json:"created"`
	Pending  int64         `json:"pending"`
	Active   int64         `json:"active"`
	Jobs     int64         `json:"jobs"`
	Resumed  bool          `json:"resumed"`
	Duration time.Duration `json:"-"`
}

// LaunchWave creates the wave (or finds it, to resume a launch cut short),
// then creates accounts for eligible people — alive, in no account yet,
// matching the criteria — in keyset-paged batches. Each batch is one
// transaction: its accounts, the jobs that will notify them, the audit event
// and the wave's checkpoint commit together, so a crash resumes where it
// stopped and never creates an account twice.
func LaunchWave(ctx context.Context, pool *pgxpool.Pool, spec WaveSpec, enqueue EnqueueFunc, opts LaunchOptions) (*LaunchResult, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = 10_000
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if spec.Window == 0 {
		spec.Window = Window(DefaultWindow)
	}
	if spec.Departments == nil {
		spec.Departments = []string{}
	}
	slices.Sort(spec.Departments)
	spec.Departments = slices.Compact(spec.Departments)
	wave, resumed, err := createWave(ctx, pool, spec, opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	res := &LaunchResult{Wave: wave, Resumed: resumed}
	for wave.CompletedAt == nil {
		done, err := launchBatch(ctx, pool, wave, res, enqueue, opts)
		if err != nil {
			return res, fmt.Errorf("launching wave %s: %w", wave.Name, err)
		}
		if opts.Progress != nil {
			opts.Progress(res.Created)
		}
		if done {
			break
		}
	}
	if res.Created > 0 {
		// The notice chunks look accounts up by id: planned on statistics
		// from before the launch, they scanned the whole table.
		if _, err := pool.Exec(ctx, `SELECT ens_analyze_accounts()`); err != nil {
			return res, fmt.Errorf("refreshing the accounts' statistics after the launch: %w", err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

func createWave(ctx context.Context, pool *pgxpool.Pool, spec WaveSpec, now time.Time) (*Wave, bool, error) {
	var w *Wave
	resumed := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO wave (name, launched_by, launched_at, departments, born_from, born_to, max_accounts, window_seconds, per_day, start_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (name) DO NOTHING RETURNING id`,
			spec.Name, spec.Actor, now, spec.Departments, nullIfZero(spec.BornFrom), nullIfZero(spec.BornTo),
			nullIfZero(spec.Limit), int64(time.Duration(spec.Window)/time.Second), nullIfZero(spec.PerDay), spec.StartAt).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			resumed = true
			if w, err = GetWave(ctx, tx, spec.Name); err != nil {
				return err
			}
			if !slices.Equal(w.Departments, spec.Departments) || deref(w.BornFrom) != spec.BornFrom ||
				deref(w.BornTo) != spec.BornTo || deref(w.Limit) != spec.Limit || w.Window != spec.Window ||
				deref(w.PerDay) != spec.PerDay || !sameTime(w.StartAt, spec.StartAt) {
				return fmt.Errorf("%w (wave %s)", ErrWaveMismatch, spec.Name)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("creating wave: %w", err)
		}
		if w, err = GetWave(ctx, tx, spec.Name); err != nil {
			return err
		}
		return AppendAudit(ctx, tx, now, Event{Actor: spec.Actor, Action: "wave.launch", WaveID: &id, Details: map[string]any{
			"name": spec.Name, "departments": spec.Departments, "born_from": spec.BornFrom, "born_to": spec.BornTo,
			"limit": spec.Limit, "window": spec.Window.String(), "per_day": spec.PerDay, "start_at": spec.StartAt,
		}})
	})
	return w, resumed, err
}

func launchBatch(ctx context.Context, pool *pgxpool.Pool, w *Wave, res *LaunchResult, enqueue EnqueueFunc, opts LaunchOptions) (bool, error) {
	done := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		now := opts.Clock.Now()
		var last, created int64
		var completed *time.Time
		if err := tx.QueryRow(ctx, `SELECT last_person_id, created_count, completed_at FROM wave WHERE id = $1 FOR UPDATE`, w.ID).
			Scan(&last, &created, &completed); err != nil {
			return fmt.Errorf("reading launch checkpoint: %w", err)
		}
		if completed != nil {
			done = true
			return nil
		}
		limit := int64(opts.BatchSize)
		if w.Limit != nil {
			limit = min(limit, *w.Limit-created)
		}
		var scannedMax *int64
		var scanned, active int64
		var ids []int64
		if limit > 0 {
			err := tx.QueryRow(ctx, `WITH cand AS (
				SELECT p.id, p.birth_date FROM person p
				WHERE p.id > $2 AND p.death_date IS NULL
				  AND (cardinality($3::text[]) = 0 OR p.department = ANY($3))
				  AND ($4::int IS NULL OR p.birth_date >= make_date($4, 1, 1))
				  AND ($5::int IS NULL OR p.birth_date < make_date($5 + 1, 1, 1))
				  AND NOT EXISTS (SELECT 1 FROM account a WHERE a.person_id = p.id)
				ORDER BY p.id LIMIT $6),
			ins AS (
				INSERT INTO account (person_id, wave_id, state, created_at, activated_at)
				SELECT id, $1, CASE WHEN birth_date >= $8 THEN 'active' ELSE 'pending' END, $7,
				       CASE WHEN birth_date >= $8 THEN $7::timestamptz END
				FROM cand ORDER BY id
				ON CONFLICT (person_id) DO NOTHING
				RETURNING id, state)
			SELECT (SELECT max(id) FROM cand), (SELECT count(*) FROM cand),
			       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM ins),
			       (SELECT count(*) FROM ins WHERE state = 'active')`,
				w.ID, last, w.Departments, w.BornFrom, w.BornTo, limit, now, NewbornSince).Scan(&scannedMax, &scanned, &ids, &active)
			if err != nil {
				return fmt.Errorf("creating accounts after person %d: %w", last, err)
			}
		}
		// Everyone the criteria select in the range just scanned (up to the
		// end of the registry when this is the last batch), by outcome: those
		// not created are accounted for as deceased or already enrolled.
		done = scanned < limit || limit <= 0
		upTo := last
		if scannedMax != nil {
			upTo = *scannedMax
		}
		var selected, deceased, enrolled int64
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE p.death_date IS NOT NULL),
				count(*) FILTER (WHERE p.death_date IS NULL AND EXISTS (SELECT 1 FROM account a WHERE a.person_id = p.id AND a.wave_id <> $1))
			FROM person p WHERE p.id > $2 AND ($6 OR p.id <= $7)
			  AND (cardinality($3::text[]) = 0 OR p.department = ANY($3))
			  AND ($4::int IS NULL OR p.birth_date >= make_date($4, 1, 1))
			  AND ($5::int IS NULL OR p.birth_date < make_date($5 + 1, 1, 1))`,
			w.ID, last, w.Departments, w.BornFrom, w.BornTo, done && (w.Limit == nil || created+int64(len(ids)) < *w.Limit), upTo).
			Scan(&selected, &deceased, &enrolled); err != nil {
			return fmt.Errorf("counting the people the launch selected: %w", err)
		}
		last = upTo
		created += int64(len(ids))
		if _, err := tx.Exec(ctx, `UPDATE wave SET last_person_id = $2, created_count = $3,
			completed_at = CASE WHEN $4 THEN $5::timestamptz END, selected_count = selected_count + $6,
			excluded_deceased = excluded_deceased + $7, excluded_enrolled = excluded_enrolled + $8 WHERE id = $1`,
			w.ID, last, created, done, now, selected, deceased, enrolled); err != nil {
			return fmt.Errorf("saving launch checkpoint: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		chunks := scheduleChunks(w, created-int64(len(ids)), ids, opts.ChunkSize)
		if err := enqueue(ctx, tx, chunks); err != nil {
			return fmt.Errorf("enqueueing notice jobs: %w", err)
		}
		if !opts.NoAudit {
			if err := AppendAudit(ctx, tx, now, Event{Actor: w.LaunchedBy, Action: "account.created", WaveID: &w.ID,
				AccountIDs: ids, Details: map[string]any{"pending": int64(len(ids)) - active, "active": active}}); err != nil {
				return err
			}
		}
		res.Created += int64(len(ids))
		res.Active += active
		res.Pending += int64(len(ids)) - active
		res.Jobs += int64(len(chunks))
		return nil
	})
	if err == nil && done {
		w.Created = res.Created
	}
	return done, err
}

func chunkIDs(waveID int64, ids []int64, size int) []Chunk {
	var out []Chunk
	for len(ids) > 0 {
		n := min(size, len(ids))
		out = append(out, Chunk{WaveID: waveID, FirstAccountID: ids[0], LastAccountID: ids[n-1]})
		ids = ids[n:]
	}
	return out
}

const waveColumns = `id, name, launched_by, launched_at, departments, born_from, born_to, max_accounts,
	window_seconds, extended_until, created_count, completed_at, paused_at, cancelled_at, per_day, start_at`

func scanWave(row pgx.Row) (*Wave, error) {
	var w Wave
	var seconds int64
	err := row.Scan(&w.ID, &w.Name, &w.LaunchedBy, &w.LaunchedAt, &w.Departments, &w.BornFrom, &w.BornTo, &w.Limit,
		&seconds, &w.ExtendedUntil, &w.Created, &w.CompletedAt, &w.PausedAt, &w.CancelledAt, &w.PerDay, &w.StartAt)
	w.Window = Window(time.Duration(seconds) * time.Second)
	return &w, err
}

// GetWave loads a wave by name.
func GetWave(ctx context.Context, db DBTX, name string) (*Wave, error) {
	if !storable(name) {
		return nil, fmt.Errorf("wave: %w", ErrNotFound)
	}
	w, err := scanWave(db.QueryRow(ctx, `SELECT `+waveColumns+` FROM wave WHERE name = $1`, name))
	if err != nil {
		return nil, notFound(err, "wave "+name)
	}
	return w, nil
}

// GetWaveByID loads a wave by id.
func GetWaveByID(ctx context.Context, db DBTX, id int64) (*Wave, error) {
	w, err := scanWave(db.QueryRow(ctx, `SELECT `+waveColumns+` FROM wave WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("wave %d", id))
	}
	return w, nil
}

// ListWaves returns every wave, oldest first.
func ListWaves(ctx context.Context, db DBTX) ([]*Wave, error) {
	rows, err := db.Query(ctx, `SELECT `+waveColumns+` FROM wave ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing waves: %w", err)
	}
	defer rows.Close()
	var out []*Wave
	for rows.Next() {
		w, err := scanWave(rows)
		if err != nil {
			return nil, fmt.Errorf("reading wave: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// WaveStatus counts a wave's accounts by state and notices by channel and
// status; every state and status is present, zeros included.
type WaveStatus struct {
	Wave     string                      `json:"wave"`
	Window   Window                      `json:"window"`
	Launched time.Time                   `json:"launched_at"`
	By       string                      `json:"launched_by"`
	Complete bool                        `json:"launch_complete"`
	Accounts map[State]int64             `json:"accounts"`
	Notices  map[string]map[string]int64 `json:"notices"`
	// Relays: what each running worker last saw of its SMTP relay.
	Relays []RelayStatus `json:"smtp_relays"`
	// Letters: the wave's letter batches by posting state, and the people
	// waiting for their letter's posting before the sweep may activate them.
	Letters PostingStatus `json:"letter_batches"`
}

// StatusOptions say when a status is read and how long the printer has to
// acknowledge a batch; the zero value means now and DefaultPostingSLA.
type StatusOptions struct {
	At         time.Time
	PostingSLA time.Duration
}

// NoticeStatuses lists every notice status, for zero-filled reports.
var NoticeStatuses = []string{"pending", "printed", "sent", "failed", "bounced", "returned", "cancelled"}

// GetWaveStatus reads a wave's counts.
func GetWaveStatus(ctx context.Context, db DBTX, name string, opts StatusOptions) (*WaveStatus, error) {
	if opts.At.IsZero() {
		opts.At = time.Now()
	}
	w, err := GetWave(ctx, db, name)
	if err != nil {
		return nil, err
	}
	st := &WaveStatus{Wave: w.Name, Window: w.Window, Launched: w.LaunchedAt, By: w.LaunchedBy, Complete: w.CompletedAt != nil,
		Accounts: map[State]int64{}, Notices: map[string]map[string]int64{}}
	for _, s := range States {
		st.Accounts[s] = 0
	}
	for _, ch := range []string{"email", "letter"} {
		st.Notices[ch] = map[string]int64{}
		for _, s := range NoticeStatuses {
			st.Notices[ch][s] = 0
		}
	}
	rows, err := db.Query(ctx, `SELECT state, count(*) FROM account WHERE wave_id = $1 GROUP BY state`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("counting accounts: %w", err)
	}
	for rows.Next() {
		var s State
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, err
		}
		st.Accounts[s] = n
	}
	rows.Close()
	rows, err = db.Query(ctx, `SELECT n.channel, n.status, count(*) FROM notice n JOIN account a ON a.id = n.account_id
		WHERE a.wave_id = $1 GROUP BY 1, 2`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("counting notices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ch, s string
		var n int64
		if err := rows.Scan(&ch, &s, &n); err != nil {
			return nil, err
		}
		st.Notices[ch][s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if st.Relays, err = RelayStatuses(ctx, db); err != nil {
		return nil, err
	}
	if st.Relays == nil {
		st.Relays = []RelayStatus{}
	}
	if st.Letters, err = GetPostingStatus(ctx, db, w.ID, opts.PostingSLA, opts.At); err != nil {
		return nil, err
	}
	return st, nil
}

// nullIfZero stores an unset criterion as NULL.
func nullIfZero[T int | int64](n T) any {
	if n == 0 {
		return nil
	}
	return n
}

func deref[T int | int64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}
