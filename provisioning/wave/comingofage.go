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

// RenotifyComingOfAge tells the people told as minors, through their
// representative, who came of age. Those whose account was activated
// meanwhile get a notice of change (came_of_age) saying the profile is
// theirs. Those not yet activated are told again, themselves, before any
// activation: each account goes back to pending for a new round of notices
// (their own email or postal address, the same code, a new window counted
// from the new notice), queued through enqueue. Until then the window
// sweep does not activate them (notice.ToldAsAMinor). Audited
// (account.came_of_age); the change feed carries the return to pending.
// It returns the accounts renotified.
func RenotifyComingOfAge(ctx context.Context, st *provisioning.Store, enqueue provisioning.EnqueueFunc) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		// Those who came of age in the last year (person_guardian_birth_idx):
		// a daily run renotified anybody older.
		rows, err := tx.Query(ctx, `SELECT a.wave_id, a.id FROM person p JOIN account a ON a.person_id = p.id
			WHERE p.birth_date > ($1::timestamptz AT TIME ZONE 'Europe/Paris')::date - interval '19 years'
			  AND a.state = 'notified' AND `+notice.ToldAsAMinor+`
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
		if err := tellAdults(ctx, tx, st.AuditKey, now); err != nil {
			return err
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

// tellAdults tells the people whose account was activated while they were
// minors, and who came of age in the last year, that the profile is now
// theirs: a notice of change (came_of_age) each, once.
func tellAdults(ctx context.Context, tx pgx.Tx, key []byte, now time.Time) error {
	rows, err := tx.Query(ctx, `SELECT a.id FROM person p JOIN account a ON a.person_id = p.id
		WHERE p.birth_date BETWEEN ($1::timestamptz AT TIME ZONE 'Europe/Paris')::date - interval '19 years'
		                       AND ($1::timestamptz AT TIME ZONE 'Europe/Paris')::date - interval '18 years'
		  AND p.guardian_nir IS NOT NULL AND coalesce(p.protection, '') <> 'tutelle' AND a.state = 'active'
		  AND (a.activated_at AT TIME ZONE 'Europe/Paris')::date < p.birth_date + interval '18 years'
		  AND NOT EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'change' AND n.topic = $2)
		ORDER BY a.id`, now, provisioning.ChangeCameOfAge)
	if err != nil {
		return fmt.Errorf("finding adults told as minors: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("finding adults told as minors: %w", err)
	}
	for _, id := range ids {
		if err := notice.TellChange(ctx, tx, id, provisioning.ChangeCameOfAge, now); err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return audit.Append(ctx, tx, key, now, audit.Event{Actor: audit.ActorSystem, Action: "account.told_of_majority", AccountIDs: ids,
		Details: map[string]any{"reason": "activated while a minor; told at 18 that the profile is theirs"}})
}
