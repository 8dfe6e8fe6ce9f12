package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning/audit"
)

// Deaths counts what ApplyDeaths changed: accounts cancelled before
// activation, active accounts closed and archived.
type Deaths struct{ Cancelled, Closed int64 }

// ApplyDeaths cancels the accounts (and their unsent notices) of people now
// known to be dead, and closes and archives their active accounts, audited
// under key.
func ApplyDeaths(ctx context.Context, tx pgx.Tx, key []byte, now time.Time) (Deaths, error) {
	var out Deaths
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
		if err := audit.Append(ctx, tx, key, now, audit.Event{Actor: audit.ActorSystem, Action: "account.cancelled", AccountIDs: ids,
			Details: map[string]any{"reason": "deceased"}}); err != nil {
			return out, err
		}
	}
	out.Cancelled = int64(len(ids))
	var active []int64
	err = tx.QueryRow(ctx, `SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}')
		FROM account a JOIN person p ON p.id = a.person_id JOIN registry_stage s ON s.nir = p.nir
		WHERE s.reason IS NULL AND s.death_date IS NOT NULL AND a.state = 'active'`).Scan(&active)
	if err != nil {
		return out, fmt.Errorf("finding active accounts of deceased people: %w", err)
	}
	if len(active) > 0 {
		n, err := CloseAndArchive(ctx, tx, key, Deletion{active, ReasonDeceased, audit.ActorSystem, now, false})
		if err != nil {
			return out, err
		}
		out.Closed = n
	}
	return out, nil
}
