package notice

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
)

// followUpsDue selects the follow-up emails due (notice n, its account a):
// window extensions and notices of changes at once, codes re-sent and
// curators' copies once the account is notified. The conditions
// followup_pending is computed from are restated for the planner, which
// knows nothing of a computed column's values: alone, it was taken to hold
// for half the notices, and a look read the whole table.
const followUpsDue = `FROM notice n JOIN account a ON a.id = n.account_id
	WHERE n.followup_pending AND n.status = 'pending' AND n.kind IN ('extension', 'resend', 'copy', 'change')
	  AND (n.kind IN ('extension', 'change') OR a.state = 'notified')`

// FollowUpsReady reports whether follow-up emails (PendingFollowUpEmails)
// are ready to send; notice_pending_followup_idx makes it cheap.
func FollowUpsReady(ctx context.Context, db provisioning.DBTX) (bool, error) {
	var ready bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 `+followUpsDue+`)`).Scan(&ready); err != nil {
		return false, fmt.Errorf("looking for follow-up emails: %w", err)
	}
	return ready, nil
}

// PendingFollowUpEmails returns the email notices not yet sent that follow a
// person's first one: window extensions, codes re-sent and curators' copies
// (these two once the account is notified, with its deadline, which they
// state), and the notices of changes.
func PendingFollowUpEmails(ctx context.Context, db provisioning.DBTX, limit int, now time.Time) ([]provisioning.Target, error) {
	// Pick the notices first, then resolve only their addressees.
	rows, err := db.Query(ctx, `WITH picked AS (
			SELECT n.id, n.kind, coalesce(n.topic, '') AS topic, n.created_at, n.seq, n.attempts, n.first_failed_at, n.account_id, a.deadline
			`+followUpsDue+` ORDER BY n.id LIMIT $1)
		SELECT pk.id, pk.kind, pk.topic, pk.created_at, pk.seq, pk.attempts, pk.first_failed_at, pk.deadline, t.* FROM `+pickedTargets+` ORDER BY pk.id`, limit, provisioning.Day(now))
	if err != nil {
		return nil, fmt.Errorf("reading follow-up email notices: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (provisioning.Target, error) {
		t := provisioning.Target{Channel: provisioning.ChannelEmail}
		err := scanTargetInto(row, &t, &t.NoticeID, &t.Kind, &t.Topic, &t.ChangedAt, &t.Seq, &t.Attempts, &t.FirstFailedAt, &t.Deadline)
		return t, err
	})
}
