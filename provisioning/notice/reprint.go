package notice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// Reprint is what ReprintBatches did to one batch.
type Reprint struct {
	BatchID    int64  `json:"batch_id"`
	Wave       string `json:"wave"`
	Department string `json:"department"`
	// Letters put back to be rendered again, with fresh dates.
	Letters int `json:"letters"`
}

// ErrNotReprintable — a batch already posted, or already withdrawn.
var ErrNotReprintable = errors.New("batch cannot be reprinted")

// ReprintBatches withdraws batches the printer lost or did not post in
// time — the given ids, or with overdue every batch not acknowledged
// within sla of its rendering — and puts their letters back to be rendered
// again: the renderer prints them in new batches with dates counted from
// the new rendering, and the same codes (derived, never stored). A
// withdrawn batch can no longer be acknowledged as posted, and its PDF is
// deleted by the retention job; the people stay notified, never activated
// before a letter of theirs is posted. A batch already posted is refused.
// Audited with the operator's name; the renders are queued in the same
// transaction.
func ReprintBatches(ctx context.Context, st *provisioning.Store, ids []int64, overdue bool, sla time.Duration, operator string,
	letters provisioning.LetterFunc) ([]Reprint, error) {
	if operator == "" {
		return nil, errors.New("the operator reprinting letters must be named")
	}
	if sla <= 0 {
		sla = DefaultPostingSLA
	}
	var out []Reprint
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		out = nil
		now := st.Clock.Now()
		rows, err := tx.Query(ctx, `SELECT b.id, b.wave_id, w.name, b.department, b.posted_on IS NOT NULL, b.withdrawn_at IS NOT NULL
			FROM letter_batch b JOIN wave w ON w.id = b.wave_id
			WHERE b.id = ANY($1) OR ($2 AND b.posted_on IS NULL AND b.withdrawn_at IS NULL AND b.rendered_at < $3::timestamptz - $4::interval)
			ORDER BY b.id FOR UPDATE OF b`, ids, overdue, now, sla)
		if err != nil {
			return fmt.Errorf("finding the batches to reprint: %w", err)
		}
		type batch struct {
			id, wave          int64
			name, dept        string
			posted, withdrawn bool
		}
		bs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (batch, error) {
			var b batch
			err := r.Scan(&b.id, &b.wave, &b.name, &b.dept, &b.posted, &b.withdrawn)
			return b, err
		})
		if err != nil {
			return fmt.Errorf("finding the batches to reprint: %w", err)
		}
		found := map[int64]bool{}
		for _, b := range bs {
			found[b.id] = true
		}
		for _, id := range ids {
			if !found[id] {
				return fmt.Errorf("letter batch %d: %w", id, provisioning.ErrNotFound)
			}
		}
		groups := letterGroups{}
		for _, b := range bs {
			switch {
			case b.posted:
				return fmt.Errorf("%w: batch %d was posted; its letters are on their way", ErrNotReprintable, b.id)
			case b.withdrawn:
				return fmt.Errorf("%w: batch %d was already withdrawn and reprinted", ErrNotReprintable, b.id)
			}
			if _, err := tx.Exec(ctx, `UPDATE letter_batch SET withdrawn_at = $2, withdrawn_by = $3 WHERE id = $1`, b.id, now, operator); err != nil {
				return fmt.Errorf("withdrawing batch %d: %w", b.id, err)
			}
			accs, err := withdrawLetters(ctx, tx, `n.batch_id = $1`, now, "batch withdrawn", b.id)
			if err != nil {
				return fmt.Errorf("putting batch %d's letters back: %w", b.id, err)
			}
			if err := audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: operator, Action: "letters.reprinted", WaveID: &b.wave,
				AccountIDs: accs, Details: map[string]any{"batch_id": b.id, "department": b.dept, "letters": len(accs)}}); err != nil {
				return err
			}
			groups.add(b.wave, b.dept)
			out = append(out, Reprint{BatchID: b.id, Wave: b.name, Department: b.dept, Letters: len(accs)})
		}
		for w, ds := range groups {
			if err := letters(ctx, tx, w, keys(ds)); err != nil {
				return fmt.Errorf("queueing the reprints: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withdrawLetters takes the printed letters of batches not yet posted that
// match where (SQL on notice n, with args) out of their batch, to be
// rendered again (the renderer's sweep finds them pending), for the
// department their recipient lives in now; each is recorded in
// letter_withdrawal with its batch, page and reason. Only the letters of
// accounts that still wait for one are taken (an account opposed, closed or
// cancelled meanwhile keeps its letter printed, never posted). It returns
// their accounts.
func withdrawLetters(ctx context.Context, tx pgx.Tx, where string, now time.Time, reason string, args ...any) ([]int64, error) {
	n := len(args)
	var accs []int64
	err := tx.QueryRow(ctx, `WITH w AS (
			SELECT n.id, n.batch_id, n.page, n.account_id, n.kind FROM notice n JOIN letter_batch b ON b.id = n.batch_id
			JOIN account a ON a.id = n.account_id
			WHERE n.status = 'printed' AND b.posted_on IS NULL AND a.state IN ('pending', 'notified', 'active') AND (`+where+`)
			FOR UPDATE OF n),
		rec AS (INSERT INTO letter_withdrawal (batch_id, notice_id, page, withdrawn_at, reason)
			SELECT batch_id, id, page, $`+fmt.Sprint(n+1)+`, $`+fmt.Sprint(n+2)+` FROM w),
		r AS (UPDATE notice n SET status = 'pending', batch_id = NULL, page = NULL,
				department = coalesce(CASE WHEN `+toRepresentative+` THEN g.department END, p.department, n.department)
			FROM w JOIN account a ON a.id = w.account_id JOIN person p ON p.id = a.person_id LEFT JOIN person g ON g.nir = p.guardian_nir
			WHERE n.id = w.id RETURNING n.account_id)
		SELECT coalesce(array_agg(account_id ORDER BY account_id), '{}') FROM r`, append(args, now, reason)...).Scan(&accs)
	return accs, err
}

// toRepresentative holds for a notice (w.kind) of person p that goes to
// their representative or curator (g) rather than to them, as targetsFor
// decides it.
const toRepresentative = `g.id IS NOT NULL AND (p.birth_date > (current_date - interval '18 years') OR p.protection = 'tutelle'
	OR (p.protection = 'curatelle' AND w.kind = 'copy'))`

// WithdrawForNewAddress takes the letters printed for people whose postal
// address changed (or whose representative's did), in batches not yet
// posted, out of those batches to be printed again to the new address;
// audited. It returns how many were withdrawn.
func WithdrawForNewAddress(ctx context.Context, tx pgx.Tx, people []int64, now time.Time, auditKey []byte, actor string) (int, error) {
	if len(people) == 0 {
		return 0, nil
	}
	accs, err := withdrawLetters(ctx, tx, `n.account_id IN (SELECT a.id FROM account a JOIN person p ON p.id = a.person_id
		WHERE p.id = ANY($1) OR p.guardian_nir IN (SELECT nir FROM person WHERE id = ANY($1)))`, now, "address changed", people)
	if err != nil {
		return 0, fmt.Errorf("withdrawing letters printed for an old address: %w", err)
	}
	if len(accs) == 0 {
		return 0, nil
	}
	return len(accs), audit.Append(ctx, tx, auditKey, now, audit.Event{Actor: actor, Action: "letters.withdrawn", AccountIDs: accs,
		Details: map[string]any{"reason": "address changed", "letters": len(accs)}})
}
