// Package feed reads the change feed the Mon espace santé platform
// consumes: every change of an account's state — created, notified,
// activated, opposed, closed, reopened, purged… — written by the database in
// the same transaction as the change (migration 025), numbered without gaps
// in commit order. It also keeps what the push to the platform has
// delivered.
//
// It imports only the provisioning root. A change carries the person's NIR,
// which is what the platform knows them by: never log a Change.
package feed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/provisioning"
)

// Change is one account's change of state.
type Change struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	AccountID int64     `json:"account_id"`
	NIR       string    `json:"nir"`
	// Change is what happened: created, notified, activated, opposed,
	// opposition_withdrawn, unreachable, pending, cancelled, closed,
	// archived, reopened, purged or replaced (a new number, same account).
	Change   string `json:"change"`
	State    string `json:"state"`
	Previous string `json:"previous,omitempty"`
	// Cause says why, where the database knows: window_closed, holder,
	// reinstated, newborn, a deletion's reason, an unreachable reason.
	Cause string `json:"cause,omitempty"`
	// ReplacedNIR is, for a "replaced" change, the number the person had
	// before: the account and its history are the same.
	ReplacedNIR string `json:"replaced_nir,omitempty"`
}

// MaxLimit bounds one read of the feed.
const MaxLimit = 10_000

// After reads up to limit changes numbered after seq, in order. Changes are
// numbered in commit order: a reader that goes on from the last sequence it
// read misses none.
//
// The numbers have no gaps, so the next limit changes are those numbered
// up to seq + limit: the feed's block-range index finds that range's pages
// (it has no B-tree: migration 043).
func After(ctx context.Context, db provisioning.DBTX, seq int64, limit int) ([]Change, error) {
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	seq = max(seq, 0)
	last := seq + int64(limit)
	if last < seq {
		last = math.MaxInt64
	}
	rows, err := db.Query(ctx, `SELECT seq, at, account_id, ens_nir_text(nir), ens_change_word(state, previous, replaced_nir)::text, state::text,
			coalesce(previous::text, ''), coalesce(cause, ''), coalesce(ens_nir_text(replaced_nir), '')
		FROM account_change WHERE seq > $1 AND seq <= $2 ORDER BY seq`, seq, last)
	if err != nil {
		return nil, fmt.Errorf("reading the change feed after %d: %w", seq, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Change, error) {
		var c Change
		err := r.Scan(&c.Seq, &c.At, &c.AccountID, &c.NIR, &c.Change, &c.State, &c.Previous, &c.Cause, &c.ReplacedNIR)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the change feed after %d: %w", seq, err)
	}
	return out, nil
}

// Push is what the push to the platform has delivered.
type Push struct {
	Head      int64      `json:"head"`      // the feed's last sequence
	AckedSeq  int64      `json:"acked_seq"` // the last the platform acknowledged
	AckedAt   *time.Time `json:"acked_at,omitempty"`
	Failures  int64      `json:"failures"` // consecutive failed pushes
	LastError string     `json:"last_error,omitempty"`
}

// Lag is how many changes the platform has not acknowledged yet.
func (p Push) Lag() int64 { return p.Head - p.AckedSeq }

// PushState reads the push's progress and the feed's head.
func PushState(ctx context.Context, db provisioning.DBTX) (Push, error) {
	var p Push
	var last *string
	err := db.QueryRow(ctx, `SELECT (SELECT seq FROM account_feed_head), acked_seq, acked_at, failures, last_error FROM platform_push`).
		Scan(&p.Head, &p.AckedSeq, &p.AckedAt, &p.Failures, &last)
	if err != nil {
		return p, fmt.Errorf("reading the platform push's state: %w", err)
	}
	if last != nil {
		p.LastError = *last
	}
	return p, nil
}

// NextPush is the batch to push: the one being sent, again and whole, when
// a push was cut short (its answer lost, its worker killed) — so a retry
// carries the same changes under the same idempotency key — or else up to
// limit changes after the last acknowledged, recorded as being sent.
func NextPush(ctx context.Context, pool *pgxpool.Pool, limit int) ([]Change, error) {
	var out []Change
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var acked, sending int64
		if err := tx.QueryRow(ctx, `SELECT acked_seq, sending_seq FROM platform_push FOR UPDATE`).Scan(&acked, &sending); err != nil {
			return fmt.Errorf("reading the platform push's state: %w", err)
		}
		if sending > acked {
			limit = int(sending - acked)
		}
		changes, err := After(ctx, tx, acked, limit)
		if err != nil || len(changes) == 0 {
			return err
		}
		out = changes
		if _, err := tx.Exec(ctx, `UPDATE platform_push SET sending_seq = $1`, changes[len(changes)-1].Seq); err != nil {
			return fmt.Errorf("recording the batch being pushed: %w", err)
		}
		return nil
	})
	return out, err
}

// ErrBehind — an acknowledgement for changes before those already
// acknowledged (a retry of a push the platform had taken): nothing moves.
var ErrBehind = errors.New("acknowledgement behind the push")

// RecordPushed records that the platform acknowledged every change up to
// seq.
func RecordPushed(ctx context.Context, db provisioning.DBTX, seq int64, at time.Time) error {
	tag, err := db.Exec(ctx, `UPDATE platform_push SET acked_seq = $1, sending_seq = greatest(sending_seq, $1), acked_at = $2,
		failures = 0, last_error = NULL WHERE acked_seq <= $1`, seq, at)
	if err != nil {
		return fmt.Errorf("recording the platform's acknowledgement: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrBehind
	}
	return nil
}

// RecordPushFailure counts a failed push and keeps why (no personal data:
// a status or a network error).
func RecordPushFailure(ctx context.Context, db provisioning.DBTX, reason string) error {
	if _, err := db.Exec(ctx, `UPDATE platform_push SET failures = failures + 1, last_error = left($1, 200)`, reason); err != nil {
		return fmt.Errorf("recording a failed push: %w", err)
	}
	return nil
}

// RecordReplaced writes, inside tx, a "replaced" change for the account of
// each person whose number an import replaced (oldNIRs[i] for persons[i]):
// the platform learns the new number of the account it knows, with the old
// one. Numbered as the database numbers every change, under the audit
// log's lock.
func RecordReplaced(ctx context.Context, tx pgx.Tx, persons []int64, oldNIRs []string, now time.Time) error {
	if len(persons) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `WITH r AS (
			SELECT a.id, a.state, p.nir, x.old FROM unnest($1::bigint[], $2::text[]) x(pid, old)
			JOIN person p ON p.id = x.pid JOIN account a ON a.person_id = p.id),
		lock AS (SELECT pg_advisory_xact_lock(7100002) WHERE EXISTS (SELECT 1 FROM r)),
		head AS (UPDATE account_feed_head SET seq = seq + (SELECT count(*) FROM r) WHERE (SELECT count(*) FROM lock) > 0
			RETURNING seq - (SELECT count(*) FROM r) AS base)
		INSERT INTO account_change (seq, at, account_id, nir, state, previous, cause, replaced_nir)
		SELECT head.base + row_number() OVER (ORDER BY r.id), $3, r.id, ens_nir_number(r.nir), r.state::account_change_word, r.state::account_change_word,
			'replaces_nir', ens_nir_number(r.old)
		FROM r, head`, persons, oldNIRs, now)
	if err != nil {
		return fmt.Errorf("writing the replaced numbers to the change feed: %w", err)
	}
	return nil
}
