package provisioning

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Opposition outcomes that are not a success.
var (
	// ErrNoMatch: no account has this code with this birth date. The same
	// error whether the code exists or not.
	ErrNoMatch = errors.New("no account matches this code and birth date")
	// ErrWindowClosed: the deadline has passed; the code no longer works.
	ErrWindowClosed = errors.New("the opposition window is closed")
)

// Holder is what the public form may show of whose account it is.
type Holder struct {
	AccountID   int64
	FirstMasked string // "Z***"
	State       State
	Deadline    *time.Time
	Opposition  *Receipt
}

// Receipt is the proof of an opposition.
type Receipt struct {
	Reference   string    `json:"reference"`
	At          time.Time `json:"at"`
	Channel     string    `json:"channel"`
	FirstMasked string    `json:"first_name"`
	Deadline    time.Time `json:"deadline"`
	Undone      bool      `json:"undone,omitempty"`
	// PostmarkedOn: a mailed opposition, counted by its postmark.
	PostmarkedOn *time.Time `json:"postmarked_on,omitempty"`
}

// MaskFirstName keeps the first letter: "Zoé" → "Z**".
func MaskFirstName(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return ""
	}
	return string(r) + strings.Repeat("*", max(2, utf8.RuneCountInString(s)-1))
}

// FindHolder looks a code's account up by its lookup hash and birth date,
// with its standing opposition when it is opposed (one round trip).
func FindHolder(ctx context.Context, db DBTX, codeHash []byte, birth time.Time) (*Holder, error) {
	var h Holder
	var first string
	var o Receipt
	var ref, channel *string
	var at *time.Time
	rows, err := db.Query(ctx, `SELECT a.id, p.first_name, a.state, a.deadline, o.reference, o.at, o.channel, o.postmarked_on
		FROM account a JOIN person p ON p.id = a.person_id
		LEFT JOIN opposition o ON o.account_id = a.id AND o.undone_at IS NULL AND a.state = 'opposed'
		WHERE a.code_hash = $1 AND p.birth_date = $2 LIMIT 2`, codeHash, birth)
	if err != nil {
		return nil, fmt.Errorf("looking up code: %w", err)
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(&h.AccountID, &first, &h.State, &h.Deadline, &ref, &at, &channel, &o.PostmarkedOn); err != nil {
			rows.Close()
			return nil, fmt.Errorf("looking up code: %w", err)
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up code: %w", err)
	}
	if n != 1 {
		// None, or two holders sharing code and birth date (a collision
		// the code alone cannot resolve): answer for nobody.
		return nil, ErrNoMatch
	}
	h.FirstMasked = MaskFirstName(first)
	if h.State == StateOpposed {
		if ref == nil || at == nil || channel == nil || h.Deadline == nil {
			return nil, fmt.Errorf("looking up code: account %d is opposed without a standing opposition", h.AccountID)
		}
		o.Reference, o.At, o.Channel, o.FirstMasked, o.Deadline = *ref, *at, *channel, h.FirstMasked, *h.Deadline
		h.Opposition = &o
	}
	return &h, nil
}

// standingReceipt reads the opposition standing on an account.
func standingReceipt(ctx context.Context, db DBTX, accountID int64, first string) (*Receipt, error) {
	r := &Receipt{FirstMasked: MaskFirstName(first)}
	err := db.QueryRow(ctx, `SELECT o.reference, o.at, o.channel, a.deadline, o.postmarked_on FROM opposition o JOIN account a ON a.id = o.account_id
		WHERE o.account_id = $1 AND o.undone_at IS NULL`, accountID).Scan(&r.Reference, &r.At, &r.Channel, &r.Deadline, &r.PostmarkedOn)
	if err != nil {
		return nil, fmt.Errorf("reading opposition: %w", err)
	}
	return r, nil
}

// uniqueHolder holds when the code hash ($1) and birth date ($2) name one
// account only: a collision never lets one person act on another's account.
const uniqueHolder = `(SELECT count(*) FROM account a2 JOIN person p2 ON p2.id = a2.person_id
	WHERE a2.code_hash = $1 AND p2.birth_date = $2) = 1`

// OpposeResult says what an opposition did.
type OpposeResult struct {
	Receipt        *Receipt
	AlreadyOpposed bool
}

// Oppose records an opposition for the account holding codeHash, if birth
// matches and its window is open. The database decides atomically: the
// account must still be notified with a deadline not passed at the moment
// the row is locked, so a concurrent window closing wins or loses whole.
func Oppose(ctx context.Context, pool *pgxpool.Pool, codeHash []byte, birth time.Time, channel, actor string, clock Clock) (*OpposeResult, error) {
	return OpposePostmarked(ctx, pool, codeHash, birth, nil, channel, actor, clock)
}

// OpposePostmarked is Oppose for a mailed opposition, whose postmark (when
// given) counts instead of today for the deadline.
func OpposePostmarked(ctx context.Context, pool *pgxpool.Pool, codeHash []byte, birth time.Time, postmark *time.Time, channel, actor string, clock Clock) (*OpposeResult, error) {
	var out *OpposeResult
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		now := clock.Now()
		effective, err := postmarkOr(postmark, now)
		if err != nil {
			return err
		}
		var id int64
		var first string
		err = tx.QueryRow(ctx, `UPDATE account a SET state = 'opposed', opposed_at = $3
			FROM person p WHERE p.id = a.person_id AND a.code_hash = $1 AND p.birth_date = $2
			  AND a.state = 'notified' AND a.deadline >= $4 AND `+uniqueHolder+`
			RETURNING a.id, p.first_name`, codeHash, birth, now, effective).Scan(&id, &first)
		if errors.Is(err, pgx.ErrNoRows) {
			h, err := FindHolder(ctx, tx, codeHash, birth)
			if err != nil {
				return err
			}
			switch {
			case h.State == StateOpposed:
				out = &OpposeResult{Receipt: h.Opposition, AlreadyOpposed: true}
				return nil
			case h.State == StateActive && postmark != nil && h.Deadline != nil && !effective.After(*h.Deadline):
				return ErrActivatedBeforeArrival
			case h.State == StateNotified || h.State == StateActive:
				return ErrWindowClosed
			}
			return ErrNoMatch // pending, cancelled, closed…: the code does not work
		}
		if err != nil {
			return fmt.Errorf("recording opposition: %w", err)
		}
		r, err := recordOpposition(ctx, tx, id, first, now, postmark, channel, actor, "")
		out = &OpposeResult{Receipt: r}
		return err
	})
	return out, err
}

// UndoOpposition withdraws an opposition while the window is open ("j'ai
// changé d'avis"): the account is notified again, with its same deadline.
func UndoOpposition(ctx context.Context, pool *pgxpool.Pool, codeHash []byte, birth time.Time, channel, actor string, clock Clock) (*Receipt, error) {
	var out *Receipt
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		now := clock.Now()
		var id int64
		err := tx.QueryRow(ctx, `UPDATE account a SET state = 'notified', opposed_at = NULL
			FROM person p WHERE p.id = a.person_id AND a.code_hash = $1 AND p.birth_date = $2
			  AND a.state = 'opposed' AND a.deadline >= $3 AND `+uniqueHolder+` RETURNING a.id`, codeHash, birth, now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			if h, err := FindHolder(ctx, tx, codeHash, birth); err != nil {
				return err
			} else if h.State == StateOpposed {
				return ErrWindowClosed
			}
			return ErrNoMatch
		}
		if err != nil {
			return fmt.Errorf("withdrawing opposition: %w", err)
		}
		out = &Receipt{Undone: true, At: now, Channel: channel}
		if err := tx.QueryRow(ctx, `UPDATE opposition SET undone_at = $2 WHERE account_id = $1 AND undone_at IS NULL RETURNING reference`,
			id, now).Scan(&out.Reference); err != nil {
			return fmt.Errorf("withdrawing opposition: %w", err)
		}
		return AppendAudit(ctx, tx, now, Event{Actor: actor, Action: "account.opposition_withdrawn", AccountIDs: []int64{id},
			Details: map[string]any{"channel": channel, "reference": out.Reference}})
	})
	return out, err
}

// ReceiptByReference reads a receipt for download.
func ReceiptByReference(ctx context.Context, db DBTX, ref string) (*Receipt, error) {
	if !storable(ref) {
		return nil, fmt.Errorf("receipt: %w", ErrNotFound)
	}
	r := &Receipt{Reference: ref}
	var first string
	var undone *time.Time
	err := db.QueryRow(ctx, `SELECT o.at, o.channel, p.first_name, a.deadline, o.undone_at FROM opposition o
		JOIN account a ON a.id = o.account_id JOIN person p ON p.id = a.person_id WHERE o.reference = $1`, ref).
		Scan(&r.At, &r.Channel, &first, &r.Deadline, &undone)
	if err != nil {
		return nil, notFound(err, "receipt")
	}
	r.FirstMasked, r.Undone = MaskFirstName(first), undone != nil
	return r, nil
}

// Reinstate gives an account to a person who opposed and then asked for it
// after all (an operator action, audited).
func Reinstate(ctx context.Context, pool *pgxpool.Pool, nir NIR, actor string, clock Clock) (*Account, error) {
	return changeAccount(ctx, pool, nir, func(tx pgx.Tx, a *Account, now time.Time) error {
		if a.State != StateOpposed {
			return fmt.Errorf("%w: reinstating an account in state %s", ErrState, a.State)
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'active', activated_at = $2 WHERE id = $1`, a.ID, now); err != nil {
			return fmt.Errorf("reinstating account: %w", err)
		}
		// The person asked for the account after all: their opposition no
		// longer stands (its receipt now reads as withdrawn).
		var refs []string
		if err := tx.QueryRow(ctx, `WITH u AS (UPDATE opposition SET undone_at = $2 WHERE account_id = $1 AND undone_at IS NULL RETURNING reference)
			SELECT coalesce(array_agg(reference), '{}') FROM u`, a.ID, now).Scan(&refs); err != nil {
			return fmt.Errorf("withdrawing the reinstated account's opposition: %w", err)
		}
		return AppendAudit(ctx, tx, now, Event{Actor: actor, Action: "account.reinstated", AccountIDs: []int64{a.ID},
			Details: map[string]any{"opposition_withdrawn": refs}})
	}, clock)
}

// ExtendWave pushes a wave's deadline to the end of day until (Paris) for
// every account whose window is still open, and creates an extension notice
// for each of them. It never shortens a window.
func ExtendWave(ctx context.Context, pool *pgxpool.Pool, name string, until time.Time, actor string, clock Clock) (int64, error) {
	end := EndOfDay(time.Date(until.Year(), until.Month(), until.Day(), 12, 0, 0, 0, Paris))
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		now := clock.Now()
		w, err := GetWave(ctx, tx, name)
		if err != nil {
			return err
		}
		var latest *time.Time
		if err := tx.QueryRow(ctx, `SELECT max(deadline) FROM account WHERE wave_id = $1 AND state IN ('notified', 'opposed')`, w.ID).Scan(&latest); err != nil {
			return err
		}
		if (latest != nil && !end.After(*latest)) || (w.ExtendedUntil != nil && !end.After(*w.ExtendedUntil)) || !end.After(now) {
			return fmt.Errorf("%w: %s would not extend the window (an extension never shortens it)", ErrState, end.Format(time.DateOnly))
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
		depts, err := recipientDepartments(ctx, tx, ids, now)
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
			       AND e.channel = 'email' AND e.status = 'sent') THEN 'email' ELSE 'letter' END AS channel) ch
			WHERE a.id = ANY($1)`, ids, dAcc, dDept); err != nil {
			return fmt.Errorf("creating extension notices: %w", err)
		}
		return AppendAudit(ctx, tx, now, Event{Actor: actor, Action: "wave.extended", WaveID: &w.ID, AccountIDs: ids,
			Details: map[string]any{"until": end.Format(time.DateOnly)}})
	})
	return n, err
}

// PendingFollowUpEmails returns the email notices not yet sent that follow a
// person's first one: window extensions, codes re-sent and curators' copies
// (these two once the account is notified, with its deadline, which they
// state).
func PendingFollowUpEmails(ctx context.Context, db DBTX, limit int, now time.Time) ([]Target, error) {
	// Pick the notices first, then resolve only their addressees.
	rows, err := db.Query(ctx, `WITH picked AS (
			SELECT n.id, n.kind, n.seq, n.attempts, n.first_failed_at, n.account_id, a.deadline
			FROM notice n JOIN account a ON a.id = n.account_id
			WHERE n.kind IN ('extension', 'resend', 'copy') AND n.channel = 'email' AND n.status = 'pending'
			  AND (n.kind = 'extension' OR a.state = 'notified') ORDER BY n.id LIMIT $1)
		SELECT pk.id, pk.kind, pk.seq, pk.attempts, pk.first_failed_at, pk.deadline, t.* FROM `+pickedTargets+` ORDER BY pk.id`, limit, Day(now))
	if err != nil {
		return nil, fmt.Errorf("reading follow-up email notices: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Target, error) {
		t := Target{Channel: ChannelEmail}
		err := scanTargetInto(row, &t, &t.NoticeID, &t.Kind, &t.Seq, &t.Attempts, &t.FirstFailedAt, &t.Deadline)
		return t, err
	})
}

const refAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newReference() string {
	b := make([]byte, 10)
	rand.Read(b) //nolint:errcheck
	for i := range b {
		b[i] = refAlphabet[b[i]&31]
	}
	return "OPP-" + string(b[:5]) + "-" + string(b[5:])
}
