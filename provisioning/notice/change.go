package notice

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
)

// TellChange creates, in tx, a notice telling an account's holder (or
// their representative) of a change of topic (provisioning.Change*): by
// email when the registry has an address, by letter when it has a complete
// postal address, else none — the change stands, audited as it is. The
// periodic sweep sends it (follow-up emails, letter renders). A change made
// by someone holding a stolen letter is thus seen by the person.
func TellChange(ctx context.Context, tx pgx.Tx, accountID int64, topic string, now time.Time) error {
	ts, err := targetsOf(ctx, tx, []int64{accountID}, now)
	if err != nil || len(ts) != 1 {
		return err
	}
	t := ts[0]
	channel, dept := provisioning.ChannelEmail, (*string)(nil)
	switch {
	case t.Email != "":
	case t.Deliverable():
		channel, dept = provisioning.ChannelLetter, &t.Department
	default:
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO notice (account_id, kind, topic, channel, department, seq)
		SELECT $1, 'change', $2, $3, $4, coalesce(max(seq), 0) + 1 FROM notice WHERE account_id = $1 AND kind = 'change'`,
		accountID, topic, channel, dept); err != nil {
		return fmt.Errorf("creating the notice of a change: %w", err)
	}
	return nil
}
