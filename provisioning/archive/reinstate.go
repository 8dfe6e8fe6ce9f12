package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// Reinstatement is a person's request for the account they had refused:
// who (NIR and birth date, both, so that one mistyped number gives nobody
// an account), the operator, and the agent who checked their identity.
type Reinstatement struct {
	NIR               provisioning.NIR
	BirthDate         time.Time
	Operator          string
	IdentityCheckedBy string
}

// Reinstate gives an account to a person who opposed and then asked for it
// after all (an operator action after an identity check, audited with both
// names).
func Reinstate(ctx context.Context, st *provisioning.Store, r Reinstatement) (*provisioning.Account, error) {
	if r.Operator == "" || r.IdentityCheckedBy == "" {
		return nil, errors.New("a reinstatement needs the operator and the agent who checked the person's identity")
	}
	return changeAccount(ctx, st, r.NIR, func(tx pgx.Tx, a *provisioning.Account, now time.Time) error {
		var matches bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM person WHERE nir = $1 AND birth_date = $2)`, string(r.NIR), r.BirthDate).
			Scan(&matches); err != nil {
			return fmt.Errorf("checking the birth date: %w", err)
		}
		if !matches {
			return fmt.Errorf("account of %s with this birth date: %w", r.NIR.Masked(), provisioning.ErrNotFound)
		}
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
		if err := notice.TellChange(ctx, tx, a.ID, provisioning.ChangeReinstated, now); err != nil {
			return err
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: r.Operator, Action: "account.reinstated", AccountIDs: []int64{a.ID},
			Details: map[string]any{"opposition_withdrawn": refs, "identity_checked_by": r.IdentityCheckedBy}})
	})
}
