package wave

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// Extend pushes a wave's deadline to the end of day until (Paris) for
// every account whose window is still open, and creates an extension notice
// for each of them. It never shortens a window.
func Extend(ctx context.Context, st *provisioning.Store, name string, until time.Time, actor string) (int64, error) {
	end := provisioning.EndOfDay(time.Date(until.Year(), until.Month(), until.Day(), 12, 0, 0, 0, provisioning.Paris))
	var n int64
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		w, err := provisioning.GetWave(ctx, tx, name)
		if err != nil {
			return err
		}
		var latest *time.Time
		if err := tx.QueryRow(ctx, `SELECT max(deadline) FROM account WHERE wave_id = $1 AND state IN ('notified', 'opposed')`, w.ID).Scan(&latest); err != nil {
			return err
		}
		if (latest != nil && !end.After(*latest)) || (w.ExtendedUntil != nil && !end.After(*w.ExtendedUntil)) || !end.After(now) {
			return fmt.Errorf("%w: %s would not extend the window (an extension never shortens it)", provisioning.ErrState, end.Format(time.DateOnly))
		}
		if _, err := tx.Exec(ctx, `UPDATE wave SET extended_until = $2 WHERE id = $1`, w.ID, end); err != nil {
			return err
		}
		var ids []int64
		if err := tx.QueryRow(ctx, `WITH up AS (
				UPDATE account SET deadline = $2 WHERE wave_id = $1 AND state IN ('notified', 'opposed') AND deadline >= $3
				RETURNING id)
			SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM up`, w.ID, end, now).Scan(&ids); err != nil {
			return fmt.Errorf("extending deadlines: %w", err)
		}
		n = int64(len(ids))
		// Opposed people keep the later deadline (they may withdraw until
		// then) but are sent nothing: their notices would stay pending.
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM account WHERE id = ANY($1) AND state = 'notified'`, ids).Scan(&ids); err != nil {
			return fmt.Errorf("extending deadlines: %w", err)
		}
		n = int64(len(ids))
		depts, err := notice.RecipientDepartments(ctx, tx, ids, now)
		if err != nil {
			return err
		}
		dAcc, dDept := make([]int64, 0, len(depts)), make([]string, 0, len(depts))
		for a, d := range depts {
			dAcc, dDept = append(dAcc, a), append(dDept, d)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notice (account_id, kind, channel, seq, department)
			SELECT a.id, 'extension', ch.channel,
			       (SELECT count(*) + 1 FROM notice x WHERE x.account_id = a.id AND x.kind = 'extension'),
			       CASE WHEN ch.channel = 'letter' THEN d.dept END
			FROM account a JOIN unnest($2::bigint[], $3::text[]) AS d(acc, dept) ON d.acc = a.id
			CROSS JOIN LATERAL (SELECT CASE WHEN EXISTS (SELECT 1 FROM notice e WHERE e.account_id = a.id
			       AND e.channel = 'email' AND e.status = 'sent') THEN 'email' ELSE 'letter' END::notice_channel AS channel) ch
			WHERE a.id = ANY($1)`, ids, dAcc, dDept); err != nil {
			return fmt.Errorf("creating extension notices: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "wave.extended", WaveID: &w.ID, AccountIDs: ids,
			Details: map[string]any{"until": end.Format(time.DateOnly)}})
	})
	return n, err
}
