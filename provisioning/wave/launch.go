package wave

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// ErrWaveMismatch — a wave is relaunched with other criteria than its own.
var ErrWaveMismatch = errors.New("a wave with this name exists with other criteria")

// LaunchOptions tunes a launch.
type LaunchOptions struct {
	BatchSize int // people scanned per transaction; default 10,000
	ChunkSize int // accounts per notice job; default 500
	Progress  func(created int64)
	// Audit can be turned off only to measure its cost (make bench).
	NoAudit bool
	// After: a new wave considers only people numbered after this person id
	// (continuous enrolment's newcomers); a resumed wave goes on from its
	// checkpoint.
	After int64
	// MaxNew bounds the accounts this run creates (a daily cap); the wave
	// goes on from there at its next run. 0: no bound.
	MaxNew int64
}

// LaunchResult says what a launch (or relaunch) did.
type LaunchResult struct {
	Wave     *provisioning.Wave `json:"wave"`
	Created  int64              `json:"created"`
	Pending  int64              `json:"pending"`
	Active   int64              `json:"active"`
	Jobs     int64              `json:"jobs"`
	Resumed  bool               `json:"resumed"`
	Duration time.Duration      `json:"-"`
}

// Launch creates the wave (or finds it, to resume a launch cut short),
// then creates accounts for eligible people — alive, in no account yet,
// matching the criteria — in keyset-paged batches. Each batch is one
// transaction: its accounts, the jobs that will notify them, the audit event
// and the wave's checkpoint commit together, so a crash resumes where it
// stopped and never creates an account twice.
func Launch(ctx context.Context, st *provisioning.Store, spec provisioning.WaveSpec, enqueue provisioning.EnqueueFunc, opts LaunchOptions) (*LaunchResult, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = 10_000
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = provisioning.DefaultChunkSize
	}
	if spec.Window == 0 {
		spec.Window = provisioning.Window(provisioning.DefaultWindow)
	}
	if spec.Departments == nil {
		spec.Departments = []string{}
	}
	slices.Sort(spec.Departments)
	spec.Departments = slices.Compact(spec.Departments)
	wave, resumed, err := createWave(ctx, st, spec, st.Clock.Now(), opts.After)
	if err != nil {
		return nil, err
	}
	res := &LaunchResult{Wave: wave, Resumed: resumed}
	for wave.CompletedAt == nil {
		done, err := launchBatch(ctx, st, wave, res, enqueue, opts)
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
		if _, err := st.Pool.Exec(ctx, `SELECT ens_analyze_accounts()`); err != nil {
			return res, fmt.Errorf("refreshing the accounts' statistics after the launch: %w", err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

func createWave(ctx context.Context, st *provisioning.Store, spec provisioning.WaveSpec, now time.Time, after int64) (*provisioning.Wave, bool, error) {
	var w *provisioning.Wave
	resumed := false
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO wave (name, launched_by, launched_at, departments, born_from, born_to, max_accounts, window_seconds, per_day, start_at, last_person_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (name) DO NOTHING RETURNING id`,
			spec.Name, spec.Actor, now, spec.Departments, nullIfZero(spec.BornFrom), nullIfZero(spec.BornTo),
			nullIfZero(spec.Limit), int64(time.Duration(spec.Window)/time.Second), nullIfZero(spec.PerDay), spec.StartAt, after).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			resumed = true
			if w, err = provisioning.GetWave(ctx, tx, spec.Name); err != nil {
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
		if w, err = provisioning.GetWave(ctx, tx, spec.Name); err != nil {
			return err
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: spec.Actor, Action: "wave.launch", WaveID: &id, Details: map[string]any{
			"name": spec.Name, "departments": spec.Departments, "born_from": spec.BornFrom, "born_to": spec.BornTo,
			"limit": spec.Limit, "window": spec.Window.String(), "per_day": spec.PerDay, "start_at": spec.StartAt,
		}})
	})
	return w, resumed, err
}

func launchBatch(ctx context.Context, st *provisioning.Store, w *provisioning.Wave, res *LaunchResult, enqueue provisioning.EnqueueFunc, opts LaunchOptions) (bool, error) {
	done := false
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
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
		if opts.MaxNew > 0 {
			limit = min(limit, opts.MaxNew-res.Created)
		}
		var scannedMax *int64
		var scanned, active int64
		var ids []int64
		if limit > 0 {
			err := tx.QueryRow(ctx, `WITH cand AS (
				SELECT p.id, p.birth_date FROM person p
				WHERE p.id > $2 AND p.death_date IS NULL AND p.opposed_at IS NULL
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
				w.ID, last, w.Departments, w.BornFrom, w.BornTo, limit, now, provisioning.NewbornSince).Scan(&scannedMax, &scanned, &ids, &active)
			if err != nil {
				return fmt.Errorf("creating accounts after person %d: %w", last, err)
			}
		}
		// Everyone the criteria select in the range just scanned (up to the
		// end of the registry when this is the last batch), by outcome: those
		// not created are accounted for as deceased or already enrolled.
		done = scanned < limit || limit <= 0
		// A run stopped by its cap has scanned only so far: the people after
		// are the next run's to select.
		capped := opts.MaxNew > 0 && res.Created+int64(len(ids)) >= opts.MaxNew
		upTo := last
		if scannedMax != nil {
			upTo = *scannedMax
		}
		var selected, deceased, enrolled int64
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE p.death_date IS NOT NULL),
				count(*) FILTER (WHERE p.death_date IS NULL AND EXISTS (SELECT 1 FROM account a WHERE a.person_id = p.id AND a.wave_id <> $1))
			FROM person p WHERE p.id > $2 AND ($6 OR p.id <= $7) AND p.opposed_at IS NULL
			  AND (cardinality($3::text[]) = 0 OR p.department = ANY($3))
			  AND ($4::int IS NULL OR p.birth_date >= make_date($4, 1, 1))
			  AND ($5::int IS NULL OR p.birth_date < make_date($5 + 1, 1, 1))`,
			w.ID, last, w.Departments, w.BornFrom, w.BornTo, done && !capped && (w.Limit == nil || created+int64(len(ids)) < *w.Limit), upTo).
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
			if err := audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: w.LaunchedBy, Action: "account.created", WaveID: &w.ID,
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

func chunkIDs(waveID int64, ids []int64, size int) []provisioning.Chunk {
	var out []provisioning.Chunk
	for len(ids) > 0 {
		n := min(size, len(ids))
		out = append(out, provisioning.Chunk{WaveID: waveID, FirstAccountID: ids[0], LastAccountID: ids[n-1]})
		ids = ids[n:]
	}
	return out
}

// Status counts a wave's accounts by state and notices by channel and
// status; every state and status is present, zeros included.
type Status struct {
	Wave     string                       `json:"wave"`
	Window   provisioning.Window          `json:"window"`
	Launched time.Time                    `json:"launched_at"`
	By       string                       `json:"launched_by"`
	Complete bool                         `json:"launch_complete"`
	Accounts map[provisioning.State]int64 `json:"accounts"`
	Notices  map[string]map[string]int64  `json:"notices"`
	// Relays: what each running worker last saw of its SMTP relay.
	Relays []notice.RelayStatus `json:"smtp_relays"`
	// Letters: the wave's letter batches by posting state, and the people
	// waiting for their letter's posting before the sweep may activate them.
	Letters notice.PostingStatus `json:"letter_batches"`
}

// StatusOptions say when a status is read and how long the printer has to
// acknowledge a batch; the zero value means now and DefaultPostingSLA.
type StatusOptions struct {
	At         time.Time
	PostingSLA time.Duration
	// AuditKey verifies the audit log a report names the head of
	// (ENS_AUDIT_KEY), with the keys rotated out before it.
	AuditKey          []byte
	AuditPreviousKeys [][]byte
}

// NoticeStatuses lists every notice status, for zero-filled reports.
var NoticeStatuses = []string{"pending", "printed", "sent", "failed", "bounced", "returned", "cancelled"}

// GetStatus reads a wave's counts.
func GetStatus(ctx context.Context, db provisioning.DBTX, name string, opts StatusOptions) (*Status, error) {
	if opts.At.IsZero() {
		opts.At = time.Now()
	}
	w, err := provisioning.GetWave(ctx, db, name)
	if err != nil {
		return nil, err
	}
	st := &Status{Wave: w.Name, Window: w.Window, Launched: w.LaunchedAt, By: w.LaunchedBy, Complete: w.CompletedAt != nil,
		Accounts: map[provisioning.State]int64{}, Notices: map[string]map[string]int64{}}
	for _, s := range provisioning.States {
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
		var s provisioning.State
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
	if st.Relays, err = notice.RelayStatuses(ctx, db); err != nil {
		return nil, err
	}
	if st.Relays == nil {
		st.Relays = []notice.RelayStatus{}
	}
	if st.Letters, err = notice.GetPostingStatus(ctx, db, w.ID, opts.PostingSLA, opts.At); err != nil {
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
