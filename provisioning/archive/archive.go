package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// The deletion reasons, as the schema allows them.
const (
	ReasonRequest  provisioning.DeletionReason = "request"
	ReasonDeceased provisioning.DeletionReason = "deceased"
	ReasonFraud    provisioning.DeletionReason = "fraud"
	// ReasonOpposedLate — a refusal postmarked by the deadline arrived after
	// the window activated the account: closed, and purged within three
	// months, never kept ten years.
	ReasonOpposedLate provisioning.DeletionReason = "opposed_late"
)

// Deletion is the deletion of active accounts, by Actor, at Now. An express
// deletion (the holder's request, or an opposition read late) is due for
// purge within three months instead of ten years.
type Deletion struct {
	IDs     []int64
	Reason  provisioning.DeletionReason
	Actor   string
	Now     time.Time
	Express bool
}

// CloseAndArchive moves active accounts to closed then archived, inside tx,
// snapshotting their person's data into the archive, cancels any unsent
// notice, and audits it under key; it returns how many it closed.
func CloseAndArchive(ctx context.Context, tx pgx.Tx, key []byte, d Deletion) (int64, error) {
	ids, reason, actor, now, fast := d.IDs, d.Reason, d.Actor, d.Now, d.Express
	retain := provisioning.RetainUntil(now)
	if fast {
		retain = provisioning.PurgeDue(now)
	}
	tag, err := tx.Exec(ctx, `UPDATE account SET state = 'closed', closed_at = $2 WHERE id = ANY($1) AND state = 'active'`, ids, now)
	if err != nil {
		return 0, fmt.Errorf("closing accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO archive (account_id, reason, deleted_at, deleted_by, retain_until, person_data, express)
		SELECT a.id, $2, $3, $4, $5, to_jsonb(p) - 'id', $6
		FROM account a JOIN person p ON p.id = a.person_id WHERE a.id = ANY($1) AND a.state = 'closed'`,
		ids, reason, now, actor, retain, fast); err != nil {
		return 0, fmt.Errorf("archiving accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE account SET state = 'archived' WHERE id = ANY($1) AND state = 'closed'`, ids); err != nil {
		return 0, fmt.Errorf("archiving accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE notice SET status = 'cancelled' WHERE account_id = ANY($1) AND status = 'pending'`, ids); err != nil {
		return 0, fmt.Errorf("cancelling notices of deleted accounts: %w", err)
	}
	n := tag.RowsAffected()
	if n > 0 {
		err = audit.Append(ctx, tx, key, now, audit.Event{Actor: actor, Action: "account.deleted", AccountIDs: ids,
			Details: map[string]any{"reason": reason, "retain_until": retain.Format(time.DateOnly), "express": fast}})
	}
	return n, err
}

// Delete closes and archives one active account, for ten years or,
// for an express deletion at the holder's request, until its purge within
// three months.
func Delete(ctx context.Context, st *provisioning.Store, nir provisioning.NIR, reason provisioning.DeletionReason, express bool, actor string) (*provisioning.Account, error) {
	if express && reason != ReasonRequest {
		return nil, fmt.Errorf("%w: express deletion is the holder's request (reason request)", provisioning.ErrState)
	}
	return changeAccount(ctx, st, nir, func(tx pgx.Tx, a *provisioning.Account, now time.Time) error {
		if a.State != provisioning.StateActive {
			return fmt.Errorf("%w: deleting an account in state %s", provisioning.ErrState, a.State)
		}
		_, err := CloseAndArchive(ctx, tx, st.AuditKey, Deletion{[]int64{a.ID}, reason, actor, now, express})
		return err
	})
}

// Reopen restores an archived account within its ten years.
func Reopen(ctx context.Context, st *provisioning.Store, nir provisioning.NIR, actor string) (*provisioning.Account, error) {
	return changeAccount(ctx, st, nir, func(tx pgx.Tx, a *provisioning.Account, now time.Time) error {
		if a.State != provisioning.StateArchived {
			return fmt.Errorf("%w: reopening an account in state %s", provisioning.ErrState, a.State)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM archive WHERE account_id = $1`, a.ID); err != nil {
			return fmt.Errorf("restoring archive: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'active', activated_at = $2 WHERE id = $1`, a.ID, now); err != nil {
			return fmt.Errorf("reopening account: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "account.reopened", AccountIDs: []int64{a.ID}})
	})
}

// changeAccount locks one person's account, applies change and returns the
// account as it then is.
func changeAccount(ctx context.Context, st *provisioning.Store, nir provisioning.NIR, change func(pgx.Tx, *provisioning.Account, time.Time) error) (*provisioning.Account, error) {
	var out *provisioning.Account
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		a, err := provisioning.AccountByNIR(ctx, tx, nir, true)
		if err != nil {
			return err
		}
		if err := change(tx, a, st.Clock.Now()); err != nil {
			return err
		}
		out, err = provisioning.AccountByNIR(ctx, tx, nir, false)
		return err
	})
	return out, err
}

// PurgeResult reports a purge run.
type PurgeResult struct {
	DryRun bool  `json:"dry_run"`
	Due    int64 `json:"due"`
	Purged int64 `json:"purged"`
}

// Purge deletes, in batches, every archive whose retention ended before now:
// the person's data goes from every table and a non-identifying trace stays.
// Nothing is purged a moment before retain_until. A dry run only counts.
func Purge(ctx context.Context, st *provisioning.Store, nirKey []byte, dryRun bool) (*PurgeResult, error) {
	return PurgeWithProgress(ctx, st, nirKey, dryRun, nil)
}

// PurgeWithProgress is Purge, calling progress with the count purged so far.
func PurgeWithProgress(ctx context.Context, st *provisioning.Store, nirKey []byte, dryRun bool, progress func(int64)) (*PurgeResult, error) {
	now := st.Clock.Now()
	res := &PurgeResult{DryRun: dryRun}
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE retain_until <= $1`, now).Scan(&res.Due); err != nil {
		return nil, fmt.Errorf("counting archives due: %w", err)
	}
	for !dryRun {
		n, err := purgeBatch(ctx, st, nirKey, now, 5000)
		if err != nil {
			return res, err
		}
		res.Purged += n
		if progress != nil {
			progress(res.Purged)
		}
		if n == 0 {
			break
		}
	}
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO purge_run (at, dry_run, due, purged) VALUES ($1, $2, $3, $4)`, now, dryRun, res.Due, res.Purged); err != nil {
			return fmt.Errorf("recording purge run: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: audit.ActorSystem, Action: "archive.purge_run",
			Details: map[string]any{"dry_run": dryRun, "due": res.Due, "purged": res.Purged}})
	})
	return res, err
}

func purgeBatch(ctx context.Context, st *provisioning.Store, nirKey []byte, now time.Time, size int) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT x.account_id, x.reason, x.deleted_at, p.nir
			FROM archive x JOIN account a ON a.id = x.account_id JOIN person p ON p.id = a.person_id
			WHERE x.retain_until <= $1 ORDER BY x.retain_until, x.account_id LIMIT $2 FOR UPDATE OF x SKIP LOCKED`, now, size)
		if err != nil {
			return fmt.Errorf("selecting archives to purge: %w", err)
		}
		var ids []int64
		var traces [][]any
		for rows.Next() {
			var id int64
			var reason, nir string
			var deleted time.Time
			if err := rows.Scan(&id, &reason, &deleted, &nir); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			traces = append(traces, []any{id, reason, deleted, now, provisioning.NIRHash(nirKey, nir)})
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"purge_trace"}, []string{"account_id", "reason", "deleted_at", "purged_at", "nir_hash"}, pgx.CopyFromRows(traces)); err != nil {
			return fmt.Errorf("writing purge traces: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM archive WHERE account_id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("deleting archives: %w", err)
		}
		// Two statements: the change feed reads the person's NIR when the
		// account turns purged, before the person is deleted.
		var people []int64
		if err := tx.QueryRow(ctx, `WITH a AS (
				UPDATE account a SET state = 'purged', person_id = NULL, code_hash = NULL
				FROM account old WHERE old.id = a.id AND a.id = ANY($1) RETURNING old.person_id)
			SELECT coalesce(array_agg(person_id), '{}') FROM a`, ids).Scan(&people); err != nil {
			return fmt.Errorf("purging accounts: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM person WHERE id = ANY($1)`, people); err != nil {
			return fmt.Errorf("purging personal data: %w", err)
		}
		n = int64(len(ids))
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: audit.ActorSystem, Action: "account.purged", AccountIDs: ids})
	})
	return n, err
}

// Count is one row of the auditors' aggregate view of the archive.
type Count struct {
	Reason string `json:"reason"`
	Year   int    `json:"year"`
	Count  int64  `json:"count"`
}

// Counts gives the archive in aggregate only: counts by reason and
// year of deletion.
func Counts(ctx context.Context, db provisioning.DBTX) ([]Count, error) {
	rows, err := db.Query(ctx, `SELECT reason, extract(year FROM deleted_at AT TIME ZONE 'Europe/Paris')::int, count(*)
		FROM archive GROUP BY 1, 2 ORDER BY 2, 1`)
	if err != nil {
		return nil, fmt.Errorf("counting archives: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Count])
}

// ArchiveAccounts closes and archives many active accounts in batches of
// 5,000 (bulk deletions, and the benchmark).
func ArchiveAccounts(ctx context.Context, st *provisioning.Store, ids []int64, reason provisioning.DeletionReason, actor string) (int64, error) {
	var total int64
	for len(ids) > 0 {
		batch := ids[:min(5000, len(ids))]
		ids = ids[len(batch):]
		err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
			n, err := CloseAndArchive(ctx, tx, st.AuditKey, Deletion{batch, reason, actor, st.Clock.Now(), false})
			total += n
			return err
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
