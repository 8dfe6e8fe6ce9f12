package provisioning

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is the state of an account (SPEC §3). The schema holds the same list
// and refuses any transition not in Transitions.
type State string

const (
	// StatePending: created by a wave, its notice not yet dispatched.
	StatePending State = "pending"
	// StateNotified: the notice was dispatched; the window runs to Deadline.
	StateNotified State = "notified"
	// StateOpposed: the person refused within the window.
	StateOpposed State = "opposed"
	// StateActive: the window closed without opposition, or a newborn.
	StateActive State = "active"
	// StateClosed: deleted; its data is being archived.
	StateClosed State = "closed"
	// StateArchived: the person's data is kept for ten years.
	StateArchived State = "archived"
	// StatePurged: the data is gone; only a non-identifying trace remains.
	StatePurged State = "purged"
	// StateCancelled: the person died or was removed before activation.
	StateCancelled State = "cancelled"
	// StateUnreachable: no deliverable channel is left (the email failed
	// and no postal address is known, or the letter came back). Never
	// activated; listed for the call centre; a new address re-notifies.
	StateUnreachable State = "unreachable"
)

// States lists every state, in the order reports show them.
var States = []State{StatePending, StateNotified, StateOpposed, StateActive, StateClosed, StateArchived, StatePurged, StateCancelled, StateUnreachable}

// Transitions are the allowed state changes, mirrored by the schema's
// account_transition table.
var Transitions = map[State][]State{
	StatePending:     {StateNotified, StateCancelled, StateUnreachable},
	StateNotified:    {StateOpposed, StateActive, StateCancelled, StateUnreachable},
	StateUnreachable: {StatePending, StateCancelled},
	StateOpposed:     {StateNotified, StateActive},
	StateActive:      {StateClosed},
	StateClosed:      {StateArchived},
	StateArchived:    {StateActive, StatePurged},
}

// NewbornSince: children born on or after this day get their account at once.
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

type deathOutcome struct{ cancelled, closed int64 }

// applyDeaths cancels the accounts (and their unsent notices) of people now
// known to be dead, and closes and archives their active accounts.
func applyDeaths(ctx context.Context, tx pgx.Tx, now time.Time) (deathOutcome, error) {
	var out deathOutcome
	var ids []int64
	err := tx.QueryRow(ctx, `WITH c AS (
		UPDATE account a SET state = 'cancelled', cancelled_at = $1, unreachable_reason = NULL, unreachable_at = NULL
		FROM person p, registry_stage s
		WHERE p.id = a.person_id AND s.nir = p.nir AND s.reason IS NULL AND s.death_date IS NOT NULL
		  AND a.state IN ('pending', 'notified', 'unreachable')
		RETURNING a.id)
		SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM c`, now).Scan(&ids)
	if err != nil {
		return out, fmt.Errorf("cancelling accounts of deceased people: %w", err)
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE notice SET status = 'cancelled' WHERE account_id = ANY($1) AND status = 'pending'`, ids); err != nil {
			return out, fmt.Errorf("cancelling notices of deceased people: %w", err)
		}
		if err := AppendAudit(ctx, tx, now, Event{Actor: ActorSystem, Action: "account.cancelled", AccountIDs: ids,
			Details: map[string]any{"reason": "deceased"}}); err != nil {
			return out, err
		}
	}
	out.cancelled = int64(len(ids))
	var active []int64
	err = tx.QueryRow(ctx, `SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}')
		FROM account a JOIN person p ON p.id = a.person_id JOIN registry_stage s ON s.nir = p.nir
		WHERE s.reason IS NULL AND s.death_date IS NOT NULL AND a.state = 'active'`).Scan(&active)
	if err != nil {
		return out, fmt.Errorf("finding active accounts of deceased people: %w", err)
	}
	if len(active) > 0 {
		n, err := closeAndArchive(ctx, tx, active, ReasonDeceased, ActorSystem, now, false)
		if err != nil {
			return out, err
		}
		out.closed = n
	}
	return out, nil
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }
