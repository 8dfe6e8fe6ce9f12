package provisioning

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// State is the state of an account (SPEC §3). The schema holds the same list
// and refuses any transition not in Transitions.
type State string

const (
	// StatePending — created by a wave, its notice not yet dispatched.
	StatePending State = "pending"
	// StateNotified — the notice was dispatched; the window runs to Deadline.
	StateNotified State = "notified"
	// StateOpposed — the person refused within the window.
	StateOpposed State = "opposed"
	// StateActive — the window closed without opposition, or a newborn.
	StateActive State = "active"
	// StateClosed — deleted; its data is being archived.
	StateClosed State = "closed"
	// StateArchived — the person's data is kept for ten years.
	StateArchived State = "archived"
	// StatePurged — the data is gone; only a non-identifying trace remains.
	StatePurged State = "purged"
	// StateCancelled — the person died or was removed before activation.
	StateCancelled State = "cancelled"
	// StateUnreachable — no deliverable channel is left (the email failed
	// and no postal address is known, or the letter came back). Never
	// activated; listed for the call centre; a new address re-notifies.
	StateUnreachable State = "unreachable"
)

// States lists every state, in the order reports show them.
var States = []State{StatePending, StateNotified, StateOpposed, StateActive, StateClosed, StateArchived, StatePurged, StateCancelled, StateUnreachable}

// Transitions are the allowed state changes, mirrored by the schema's
// account_transition table.
var Transitions = map[State][]State{
	StatePending:     {StateNotified, StateCancelled, StateUnreachable, StateOpposed},
	StateNotified:    {StateOpposed, StateActive, StateCancelled, StateUnreachable, StatePending}, // pending: told again at 18
	StateUnreachable: {StatePending, StateCancelled, StateOpposed},
	StateOpposed:     {StateNotified, StateActive, StatePending},
	StateActive:      {StateClosed, StateUnreachable},
	StateClosed:      {StateArchived},
	StateArchived:    {StateActive, StatePurged},
}

// NewbornSince — children born on or after this day get their account at once.
var NewbornSince = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// Account is one person's espace numérique de santé.
type Account struct {
	ID          int64      `json:"id"`
	WaveID      int64      `json:"wave_id"`
	Wave        string     `json:"wave"`
	State       State      `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	NotifiedAt  *time.Time `json:"notified_at"`
	Deadline    *time.Time `json:"deadline"`
	OpposedAt   *time.Time `json:"opposed_at"`
	ActivatedAt *time.Time `json:"activated_at"`
	ClosedAt    *time.Time `json:"closed_at"`
	CancelledAt *time.Time `json:"cancelled_at"`
	NIRMasked   string     `json:"nir"`
	// Archive says why and until when a deleted account's data is kept.
	Archive *ArchiveInfo `json:"archive,omitempty"`
}

// ArchiveInfo is a deleted account's archive: kept until RetainUntil (ten
// years), or purged by PurgeDue after an express deletion.
type ArchiveInfo struct {
	Reason      DeletionReason `json:"reason"`
	DeletedAt   time.Time      `json:"deleted_at"`
	RetainUntil *time.Time     `json:"retain_until,omitempty"`
	PurgeDue    *time.Time     `json:"purge_due,omitempty"`
}

// DeletionReason says why an account was deleted.
type DeletionReason string

// RetentionYears is how long an archive is kept before it is purged.
const RetentionYears = 10

// ErrState — the account is not in a state that allows the operation.
var ErrState = errors.New("account is not in a state that allows this")

// RetainUntil is the end of retention for data deleted at deletedAt: the same
// moment ten calendar years later, in Paris.
func RetainUntil(deletedAt time.Time) time.Time {
	return deletedAt.In(Paris).AddDate(RetentionYears, 0, 0)
}

// PurgeDue is when an express deletion made at deletedAt is purged: within
// three months, counted with two days' margin for the daily purge.
func PurgeDue(deletedAt time.Time) time.Time {
	return deletedAt.In(Paris).AddDate(0, 3, -2)
}

const accountColumns = `a.id, a.wave_id, w.name, a.state, a.created_at, a.notified_at, a.deadline, a.opposed_at,
	a.activated_at, a.closed_at, a.cancelled_at, x.reason, x.deleted_at, x.retain_until, x.express`

// AccountByNIR reads the account of the person nir names, locked for update
// when lock is set (inside a transaction).
func AccountByNIR(ctx context.Context, db DBTX, nir NIR, lock bool) (*Account, error) {
	q := `SELECT ` + accountColumns + ` FROM account a JOIN wave w ON w.id = a.wave_id JOIN person p ON p.id = a.person_id
		LEFT JOIN archive x ON x.account_id = a.id WHERE p.nir = $1`
	if lock {
		q += ` FOR UPDATE OF a`
	}
	var a Account
	var reason *string
	var deleted, retain *time.Time
	var express *bool
	err := db.QueryRow(ctx, q, string(nir)).Scan(&a.ID, &a.WaveID, &a.Wave, &a.State, &a.CreatedAt, &a.NotifiedAt,
		&a.Deadline, &a.OpposedAt, &a.ActivatedAt, &a.ClosedAt, &a.CancelledAt, &reason, &deleted, &retain, &express)
	if err != nil {
		return nil, NotFound(err, "account of "+nir.Masked())
	}
	if reason != nil {
		a.Archive = &ArchiveInfo{Reason: DeletionReason(*reason), DeletedAt: *deleted}
		if *express {
			a.Archive.PurgeDue = retain
		} else {
			a.Archive.RetainUntil = retain
		}
	}
	a.NIRMasked = nir.Masked()
	return &a, nil
}

// GetAccount reads the account of one person.
// A person who refused before any wave selected them has no account: they
// are shown opposed, with ID 0 and no wave.
func GetAccount(ctx context.Context, db DBTX, nir NIR) (*Account, error) {
	a, err := AccountByNIR(ctx, db, nir, false)
	if errors.Is(err, ErrNotFound) {
		var at *time.Time
		if e := db.QueryRow(ctx, `SELECT opposed_at FROM person WHERE nir = $1`, string(nir)).Scan(&at); e == nil && at != nil {
			return &Account{State: StateOpposed, CreatedAt: *at, OpposedAt: at, NIRMasked: nir.Masked()}, nil
		}
		var replacedBy string
		if e := db.QueryRow(ctx, `SELECT new_nir FROM nir_replacement WHERE old_nir = $1`, string(nir)).Scan(&replacedBy); e == nil {
			return nil, fmt.Errorf("%w: %s was replaced by %s", ErrReplaced, nir.Masked(), MaskNIR(replacedBy))
		}
	}
	return a, err
}

// ErrReplaced — the number was replaced by another (a provisional number
// become final): the person and their account are under the new one.
var ErrReplaced = errors.New("this number was replaced")

// NIRHash is the keyed hash kept after a purge, so that a re-registration of
// the same person is recognised without keeping the number.
func NIRHash(key []byte, nir string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ens-nir-v1:" + nir))
	return m.Sum(nil)
}
