package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultWindow is the six-week opposition window.
const DefaultWindow = 42 * 24 * time.Hour

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

// ParseWindow reads a window in the one duration syntax of ens
// (ParseDuration): "42d", "3d12h", "90s".
func ParseWindow(s string) (Window, error) {
	d, err := ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("window: %w", err)
	}
	if d <= 0 {
		return 0, errors.New("window must be positive")
	}
	return Window(d), nil
}

// String renders whole days as "42d", anything else as a Go duration.
func (w Window) String() string { return FormatDuration(time.Duration(w)) }

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
	if !Storable(name) {
		return nil, fmt.Errorf("wave: %w", ErrNotFound)
	}
	w, err := scanWave(db.QueryRow(ctx, `SELECT `+waveColumns+` FROM wave WHERE name = $1`, name))
	if err != nil {
		return nil, NotFound(err, "wave "+name)
	}
	return w, nil
}

// GetWaveByID loads a wave by id.
func GetWaveByID(ctx context.Context, db DBTX, id int64) (*Wave, error) {
	w, err := scanWave(db.QueryRow(ctx, `SELECT `+waveColumns+` FROM wave WHERE id = $1`, id))
	if err != nil {
		return nil, NotFound(err, fmt.Sprintf("wave %d", id))
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
