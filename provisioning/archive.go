package provisioning

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DeletionReason says why an account was deleted.
type DeletionReason string

// The deletion reasons, as the schema allows them.
const (
	ReasonRequest  DeletionReason = "request"
	ReasonDeceased DeletionReason = "deceased"
	ReasonFraud    DeletionReason = "fraud"
)

// RetentionYears is how long an archive is kept before it is purged.
const RetentionYears = 10

// ErrState: the account is not in a state that allows the operation.
var ErrState = errors.New("account is not in a state that allows this")

// RetainUntil is the end of retention for data deleted at deletedAt: the same
// moment ten calendar years later, in Paris.
func RetainUntil(deletedAt time.Time) time.Time {
	return deletedAt.In(Paris).AddDate(RetentionYears, 0, 0)
}

// PurgeDue is when an express deletion made at deletedAt is purged: within
// three months, counted with two days' margin for the daily purge.
func PurgeDue(deletedAt time.Time) time.Time {
	return deletedAt.In(Paris).AddDate(0, 3, -2)
}

// closeAndArchive moves active accounts to closed then archived, snapshotting
// their person's data into the archive, and cancels any unsent notice. An
// express deletion (the holder's request) is due for purge within three
// months instead of ten years.
func closeAndArchive(ctx context.Context, tx pgx.Tx, ids []int64, reason DeletionReason, actor string, now time.Time, fast bool) (int64, error) {
	retain := RetainUntil(now)
	if fast {
		retain = PurgeDue(now)
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
		err = AppendAudit(ctx, tx, now, Event{Actor: actor, Action: "account.deleted", AccountIDs: ids,
			Details: map[string]any{"reason": reason, "retain_until": retain.Format(time.DateOnly), "express": fast}})
	}
	return n, err
}

// DeleteAccount closes and archives one active account, for ten years or,
// for an express deletion at the holder's request, until its purge within
// three months.
func DeleteAccount(ctx context.Context, pool *pgxpool.Pool, nir NIR, reason DeletionReason, express bool, actor string, clock Clock) (*Account, error) {
	if express && reason != ReasonRequest {
		return nil, fmt.Errorf("%w: express deletion is the holder's request (reason request)", ErrState)
	}
	return changeAccount(ctx, pool, nir, func(tx pgx.Tx, a *Account, now time.Time) error {
		if a.State != StateActive {
			return fmt.Errorf("%w: deleting an account in state %s", ErrState, a.State)
		}
		_, err := closeAndArchive(ctx, tx, []int64{a.ID}, reason, actor, now, express)
		return err
	}, clock)
}

// ReopenAccount restores an archived account within its ten years.
func ReopenAccount(ctx context.Context, pool *pgxpool.Pool, nir NIR, actor string, clock Clock) (*Account, error) {
	return changeAccount(ctx, pool, nir, func(tx pgx.Tx, a *Account, now time.Time) error {
		if a.State != StateArchived {
			return fmt.Errorf("%w: reopening an account in state %s", ErrState, a.State)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM archive WHERE account_id = $1`, a.ID); err != nil {
			return fmt.Errorf("restoring archive: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'active', activated_at = $2 WHERE id = $1`, a.ID, now); err != nil {
			return fmt.Errorf("reopening account: %w", err)
		}
		return AppendAudit(ctx, tx, now, Event{Actor: actor, Action: "account.reopened", AccountIDs: []int64{a.ID}})
	}, clock)
}

// changeAccount locks one person's account, applies change and returns the
// account as it then is.
func changeAccount(ctx context.Context, pool *pgxpool.Pool, nir NIR, change func(pgx.Tx, *Account, time.Time) error, clock Clock) (*Account, error) {
	var out *Account
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		a, err := accountByNIR(ctx, tx, nir, true)
		if err != nil {
			return err
		}
		if err := change(tx, a, clock.Now()); err != nil {
			return err
		}
		out, err = accountByNIR(ctx, tx, nir, false)
		return err
	})
	return out, err
}

const accountColumns = `a.id, a.wave_id, w.name, a.state, a.created_at, a.notified_at, a.deadline, a.opposed_at,
	a.activated_at, a.closed_at, a.cancelled_at, x.reason, x.deleted_at, x.retain_until, x.express`

func accountByNIR(ctx context.Context, db DBTX, nir NIR, lock bool) (*Account, error) {
	q := `SELECT ` + accountColumns + ` FROM account a JOIN wave w ON w.id = a.wave_id JOIN person p ON p.id = a.person_id
		LEFT JOIN archive x ON x.account_id = a.id WHERE p.nir = $1`
	if lock {
		q += ` FOR UPDATE OF a`
	}
	var a Account
	var reason *string
	var deleted, retain *time.Time
	var express *bool
	err := db.QueryRow(ctx, q, string(nir)).Scan(&a.ID, &a.WaveID, &a.Wave, &a.State, &a.CreatedAt, &a.NotifiedAt,
		&a.Deadline, &a.OpposedAt, &a.ActivatedAt, &a.ClosedAt, &a.CancelledAt, &reason, &deleted, &retain, &express)
	if err != nil {
		return nil, notFound(err, "account of "+nir.Masked())
	}
	if reason != nil {
		a.Archive = &ArchiveInfo{Reason: DeletionReason(*reason), DeletedAt: *deleted}
		if *express {
			a.Archive.PurgeDue = retain
		} else {
			a.Archive.RetainUntil = retain
		}
	}
	a.NIRMasked = nir.Masked()
	return &a, nil
}

// GetAccount reads the account of one person.
func GetAccount(ctx context.Context, db DBTX, nir NIR) (*Account, error) {
	return accountByNIR(ctx, db, nir, false)
}

// NIRHash is the keyed hash kept after a purge, so that a re-registration of
// the same person is recognised without keeping the number.
func NIRHash(key []byte, nir string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ens-nir-v1:" + nir))
	return m.Sum(nil)
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
func Purge(ctx context.Context, pool *pgxpool.Pool, nirKey []byte, dryRun bool, clock Clock) (*PurgeResult, error) {
	return PurgeWithProgress(ctx, pool, nirKey, dryRun, clock, nil)
}

// PurgeWithProgress is Purge, calling progress with the count purged so far.
func PurgeWithProgress(ctx context.Context, pool *pgxpool.Pool, nirKey []byte, dryRun bool, clock Clock, progress func(int64)) (*PurgeResult, error) {
	now := clock.Now()
	res := &PurgeResult{DryRun: dryRun}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE retain_until <= $1`, now).Scan(&res.Due); err != nil {
		return nil, fmt.Errorf("counting archives due: %w", err)
	}
	for !dryRun {
		n, err := purgeBatch(ctx, pool, nirKey, now, 5000)
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
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO purge_run (at, dry_run, due, purged) VALUES ($1, $2, $3, $4)`, now, dryRun, res.Due, res.Purged); err != nil {
			return fmt.Errorf("recording purge run: %w", err)
		}
		return AppendAudit(ctx, tx, now, Event{Actor: ActorSystem, Action: "archive.purge_run",
			Details: map[string]any{"dry_run": dryRun, "due": res.Due, "purged": res.Purged}})
	})
	return res, err
}

func purgeBatch(ctx context.Context, pool *pgxpool.Pool, nirKey []byte, now time.Time, size int) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
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
			traces = append(traces, []any{id, reason, deleted, now, NIRHash(nirKey, nir)})
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
		if _, err := tx.Exec(ctx, `WITH a AS (
				UPDATE account a SET state = 'purged', person_id = NULL, code_hash = NULL
				FROM account old WHERE old.id = a.id AND a.id = ANY($1) RETURNING old.person_id)
			DELETE FROM person WHERE id IN (SELECT person_id FROM a)`, ids); err != nil {
			return fmt.Errorf("purging personal data: %w", err)
		}
		n = int64(len(ids))
		return AppendAudit(ctx, tx, now, Event{Actor: ActorSystem, Action: "account.purged", AccountIDs: ids})
	})
	return n, err
}

// ArchiveCount is one row of the auditors' aggregate view of the archive.
type ArchiveCount struct {
	Reason string `json:"reason"`
	Year   int    `json:"year"`
	Count  int64  `json:"count"`
}

// ArchiveCounts gives the archive in aggregate only: counts by reason and
// year of deletion.
func ArchiveCounts(ctx context.Context, db DBTX) ([]ArchiveCount, error) {
	rows, err := db.Query(ctx, `SELECT reason, extract(year FROM deleted_at AT TIME ZONE 'Europe/Paris')::int, count(*)
		FROM archive GROUP BY 1, 2 ORDER BY 2, 1`)
	if err != nil {
		return nil, fmt.Errorf("counting archives: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ArchiveCount])
}

// ArchiveAccounts closes and archives many active accounts in batches of
// 5,000 (bulk deletions, and the benchmark).
func ArchiveAccounts(ctx context.Context, pool *pgxpool.Pool, ids []int64, reason DeletionReason, actor string, clock Clock) (int64, error) {
	var total int64
	for len(ids) > 0 {
		batch := ids[:min(5000, len(ids))]
		ids = ids[len(batch):]
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			n, err := closeAndArchive(ctx, tx, batch, reason, actor, clock.Now(), false)
			total += n
			return err
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
