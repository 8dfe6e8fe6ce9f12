package wave

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// Pause stops a wave's dispatch (notices already sent keep their
// window); Resume lets it go on. Both audited.
func Pause(ctx context.Context, st *provisioning.Store, name, actor string) error {
	return setPaused(ctx, st, name, actor, true)
}

// Resume lets a paused wave's dispatch go on.
func Resume(ctx context.Context, st *provisioning.Store, name, actor string) error {
	return setPaused(ctx, st, name, actor, false)
}

func setPaused(ctx context.Context, st *provisioning.Store, name, actor string, pause bool) error {
	return pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var id int64
		var cancelled *time.Time
		if err := tx.QueryRow(ctx, `SELECT id, cancelled_at FROM wave WHERE name = $1 FOR UPDATE`, name).Scan(&id, &cancelled); err != nil {
			return provisioning.NotFound(err, "wave "+name)
		}
		if cancelled != nil {
			return fmt.Errorf("%w: wave %s was cancelled", provisioning.ErrState, name)
		}
		if _, err := tx.Exec(ctx, `UPDATE wave SET paused_at = CASE WHEN $2 THEN coalesce(paused_at, $3) END WHERE id = $1`, id, pause, now); err != nil {
			return fmt.Errorf("pausing or resuming the wave: %w", err)
		}
		action := "wave.resumed"
		if pause {
			action = "wave.paused"
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: action, WaveID: &id})
	})
}

// Cancel cancels what a wave has not sent: its accounts still pending
// are cancelled with their notices; those already notified keep their
// window. Audited; it returns the accounts cancelled.
func Cancel(ctx context.Context, st *provisioning.Store, name, actor string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var id int64
		if err := tx.QueryRow(ctx, `UPDATE wave SET cancelled_at = coalesce(cancelled_at, $2) WHERE name = $1 RETURNING id`, name, now).Scan(&id); err != nil {
			return provisioning.NotFound(err, "wave "+name)
		}
		var ids []int64
		if err := tx.QueryRow(ctx, `WITH c AS (UPDATE account SET state = 'cancelled', cancelled_at = $2
				WHERE wave_id = $1 AND state = 'pending' RETURNING id)
			SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM c`, id, now).Scan(&ids); err != nil {
			return fmt.Errorf("cancelling the wave's pending accounts: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE notice SET status = 'cancelled' WHERE account_id = ANY($1) AND status = 'pending'`, ids); err != nil {
			return fmt.Errorf("cancelling the wave's notices: %w", err)
		}
		n = int64(len(ids))
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "wave.cancelled", WaveID: &id, AccountIDs: ids,
			Details: map[string]any{"cancelled": n}})
	})
	return n, err
}

// Retry queues notice chunks again for a wave's pending accounts that
// no chunk job will reach any more (their chunk failed for good and was
// discarded), through enqueue, in the transaction that finds them; it
// returns the accounts re-driven. chunkStates are the River job states
// that still count as reaching an account.
func Retry(ctx context.Context, st *provisioning.Store, name, actor, chunkKind string, chunkStates []string, enqueue provisioning.EnqueueFunc) (int64, error) {
	w, err := provisioning.GetWave(ctx, st.Pool, name)
	if err != nil {
		return 0, err
	}
	var n int64
	err = pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var ids []int64
		err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}') FROM account a
			WHERE a.wave_id = $1 AND a.state = 'pending' AND NOT EXISTS (
				SELECT 1 FROM river_job j WHERE j.kind = $2 AND j.state::text = ANY($3)
				  AND (j.args->>'wave_id')::bigint = $1
				  AND a.id BETWEEN (j.args->>'first_account_id')::bigint AND (j.args->>'last_account_id')::bigint)`,
			w.ID, chunkKind, chunkStates).Scan(&ids)
		if err != nil {
			return fmt.Errorf("finding pending accounts no chunk reaches: %w", err)
		}
		n = int64(len(ids))
		if n == 0 {
			return nil
		}
		ids = slices.Compact(ids)
		if err := enqueue(ctx, tx, chunkIDs(w.ID, ids, provisioning.DefaultChunkSize)); err != nil {
			return fmt.Errorf("queueing the chunks again: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "wave.retried", WaveID: &w.ID, AccountIDs: ids,
			Details: map[string]any{"accounts": n}})
	})
	return n, err
}
