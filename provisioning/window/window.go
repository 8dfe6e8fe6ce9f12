package window

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// DefaultActivationGrace is how long an account waits after its deadline
// before it is activated (ENS_ACTIVATION_GRACE): a refusal posted on the last
// day arrives days later, and a letter La Poste brings back takes weeks.
const DefaultActivationGrace = 10 * 24 * time.Hour

// Close activates, in batches, every notified account whose deadline — in
// its person's time zone (provisioning.LocalDeadline) — has passed by more
// than grace, and whose person was informed (InformedProof: an email the
// relay accepted, or a letter the printer acknowledged as posted); the
// others wait (GetPostingStatus counts them). During the grace the account
// stays notified: a refusal postmarked in time is honoured as on time, and a
// returned letter makes its person unreachable. Rows are taken with SKIP
// LOCKED, so several workers share the sweep, and the state is re-checked
// under the row lock, so an opposition racing the closing either wins
// entirely or loses entirely.
func Close(ctx context.Context, st *provisioning.Store, grace time.Duration, batch int) (int64, error) {
	if batch <= 0 {
		batch = 5000
	}
	var total int64
	for {
		var n int64
		err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
			now := st.Clock.Now()
			cutoff := provisioning.AddDays(now, -grace)
			var ids []int64
			err := tx.QueryRow(ctx, `WITH due AS (
					SELECT a.id FROM account a JOIN person p ON p.id = a.person_id
					WHERE a.state = 'notified' AND a.deadline < $3 AND ens_local_deadline(a.deadline, p.department) < $3
					  AND a.code_hash IS NOT NULL AND `+notice.InformedProof+` AND NOT (`+notice.ToldAsAMinor+`)
					ORDER BY a.deadline, a.id LIMIT $2 FOR UPDATE OF a SKIP LOCKED),
				up AS (UPDATE account a SET state = 'active', activated_at = $1
					FROM due WHERE a.id = due.id AND a.state = 'notified' RETURNING a.id)
				SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM up`, now, batch, cutoff).Scan(&ids)
			if err != nil {
				return fmt.Errorf("activating accounts whose window closed: %w", err)
			}
			n = int64(len(ids))
			if n == 0 {
				return nil
			}
			return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: audit.ActorSystem, Action: "account.activated", AccountIDs: ids,
				Details: map[string]any{"reason": "window_closed", "grace": provisioning.FormatDuration(grace)}})
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// WithheldActivations counts the accounts whose window and grace have ended
// that the sweep will not activate: no proof their person was informed (a
// letter not yet posted, a fallback letter still to print) or no code hash
// (ens reconcile lists them).
func WithheldActivations(ctx context.Context, db provisioning.DBTX, now time.Time, grace time.Duration) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `SELECT count(*) FROM account a WHERE a.state = 'notified' AND a.deadline < $1
		AND (a.code_hash IS NULL OR NOT (`+notice.InformedProof+`))`, provisioning.AddDays(now, -grace)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting withheld activations: %w", err)
	}
	return n, nil
}
