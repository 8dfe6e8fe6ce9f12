package wave

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// RenotifyComingOfAge tells again, themselves, the people told as minors
// through their representative who came of age before their account was
// activated: each account goes back to pending for a new round of notices
// (their own email or postal address, the same code, a new window counted
// from the new notice), queued through enqueue. Until then the window
// sweep does not activate them (notice.ToldAsAMinor). Audited
// (account.came_of_age); the change feed carries the return to pending.
// It returns the accounts renotified.
func RenotifyComingOfAge(ctx context.Context, st *provisioning.Store, enqueue provisioning.EnqueueFunc) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		rows, err := tx.Query(ctx, `SELECT a.wave_id, a.id FROM account a JOIN person p ON p.id = a.person_id
			WHERE a.state = 'notified' AND `+notice.ToldAsAMinor+`
			ORDER BY a.wave_id, a.id FOR UPDATE OF a SKIP LOCKED`, now)
		if err != nil {
			return fmt.Errorf("finding people who came of age: %w", err)
		}
		byWave := map[int64][]int64{}
		var waves, ids []int64
		for rows.Next() {
			var w, id int64
			if err := rows.Scan(&w, &id); err != nil {
				rows.Close()
				return err
			}
			if byWave[w] == nil {
				waves = append(waves, w)
			}
			byWave[w] = append(byWave[w], id)
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("finding people who came of age: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('ens.cause', 'came_of_age', true)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'pending', notice_round = notice_round + 1, notified_at = NULL, deadline = NULL
			WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("renotifying people who came of age: %w", err)
		}
		var chunks []provisioning.Chunk
		for _, w := range waves {
			acc := byWave[w]
			for i := 0; i < len(acc); i += 500 {
				chunks = append(chunks, provisioning.Chunk{WaveID: w, FirstAccountID: acc[i], LastAccountID: acc[min(i+500, len(acc))-1]})
			}
		}
		if err := enqueue(ctx, tx, chunks); err != nil {
			return fmt.Errorf("queueing the notices of people who came of age: %w", err)
		}
		n = int64(len(ids))
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: audit.ActorSystem, Action: "account.came_of_age", AccountIDs: ids,
			Details: map[string]any{"count": len(ids), "reason": "told as a minor through a representative; told again, themselves, before any activation"}})
	})
	return n, err
}
