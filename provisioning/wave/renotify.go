package wave

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// RenotifyResult is what ens wave renotify did.
type RenotifyResult struct {
	Renotified int64 `json:"renotified"`
	// StillUnreachable: unreachable people whose registry row has not
	// changed since (the same address would fail again).
	StillUnreachable int64 `json:"still_unreachable"`
}

// Renotify starts a new round of notices, with a new window, for the
// wave's unreachable people whose registry row (or their representative's)
// changed since they became unreachable and now gives a usable email or a
// complete postal address. Their chunks are queued through enqueue.
func Renotify(ctx context.Context, st *provisioning.Store, name, actor string, enqueue provisioning.EnqueueFunc) (*RenotifyResult, error) {
	w, err := provisioning.GetWave(ctx, st.Pool, name)
	if err != nil {
		return nil, err
	}
	res := &RenotifyResult{}
	err = pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		rows, err := tx.Query(ctx, notice.TargetSelect+`
			LEFT JOIN person gp ON gp.nir = p.guardian_nir
			WHERE a.wave_id = $1 AND a.state = 'unreachable'
			  AND greatest(p.updated_at, coalesce(gp.updated_at, p.updated_at)) > a.unreachable_at
			ORDER BY a.id FOR UPDATE OF a`, w.ID, provisioning.Day(now))
		if err != nil {
			return fmt.Errorf("finding unreachable people with new contact details: %w", err)
		}
		ts, err := pgx.CollectRows(rows, notice.ScanTarget)
		if err != nil {
			return fmt.Errorf("finding unreachable people with new contact details: %w", err)
		}
		var ids []int64
		for _, t := range ts {
			if t.Email != "" || t.Deliverable() {
				ids = append(ids, t.AccountID)
			}
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM account WHERE wave_id = $1 AND state = 'unreachable'`, w.ID).Scan(&res.StillUnreachable); err != nil {
			return err
		}
		res.StillUnreachable -= int64(len(ids))
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'pending', unreachable_reason = NULL, unreachable_at = NULL,
			notice_round = notice_round + 1, notified_at = NULL, deadline = NULL WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("re-notifying accounts: %w", err)
		}
		res.Renotified = int64(len(ids))
		var chunks []provisioning.Chunk
		for i := 0; i < len(ids); i += 500 {
			j := min(i+500, len(ids)) - 1
			chunks = append(chunks, provisioning.Chunk{WaveID: w.ID, FirstAccountID: ids[i], LastAccountID: ids[j]})
		}
		if err := enqueue(ctx, tx, chunks); err != nil {
			return fmt.Errorf("queueing the new notices: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "wave.renotified", WaveID: &w.ID, AccountIDs: ids,
			Details: map[string]any{"count": len(ids)}})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
