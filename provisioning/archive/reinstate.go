package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// Reinstate gives an account to a person who opposed and then asked for it
// after all (an operator action, audited).
func Reinstate(ctx context.Context, st *provisioning.Store, nir provisioning.NIR, actor string) (*provisioning.Account, error) {
	return changeAccount(ctx, st, nir, func(tx pgx.Tx, a *provisioning.Account, now time.Time) error {
		if a.State != provisioning.StateOpposed {
			return fmt.Errorf("%w: reinstating an account in state %s", provisioning.ErrState, a.State)
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'active', activated_at = $2 WHERE id = $1`, a.ID, now); err != nil {
			return fmt.Errorf("reinstating account: %w", err)
		}
		// The person asked for the account after all: their opposition no
		// longer stands (its receipt now reads as withdrawn).
		var refs []string
		if err := tx.QueryRow(ctx, `WITH u AS (UPDATE opposition SET undone_at = $2 WHERE account_id = $1 AND undone_at IS NULL RETURNING reference)
			SELECT coalesce(array_agg(reference), '{}') FROM u`, a.ID, now).Scan(&refs); err != nil {
			return fmt.Errorf("withdrawing the reinstated account's opposition: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "account.reinstated", AccountIDs: []int64{a.ID},
			Details: map[string]any{"opposition_withdrawn": refs}})
	})
}
