package window

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
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
	State       provisioning.State
	Deadline    *time.Time
	Opposition  *Receipt
	// What deciding a mailed opposition needs, never shown: the person's
	// department of residence (their time zone), when the account was
	// notified, and whether its holder activated it themselves.
	Department        string     `json:"-"`
	NotifiedAt        *time.Time `json:"-"`
	ActivatedByHolder bool       `json:"-"`
}

// Receipt is the proof of an opposition.
type Receipt struct {
	Reference   string    `json:"reference"`
	At          time.Time `json:"at"`
	Channel     string    `json:"channel"`
	FirstMasked string    `json:"first_name"`
	Deadline    time.Time `json:"deadline,omitzero"` // none for a refusal before any notice
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
func FindHolder(ctx context.Context, db provisioning.DBTX, codeHash []byte, birth time.Time) (*Holder, error) {
	var h Holder
	var first string
	var o Receipt
	var ref, channel *string
	var at *time.Time
	rows, err := db.Query(ctx, `SELECT a.id, p.first_name, a.state, a.deadline, o.reference, o.at, o.channel, o.postmarked_on,
		       coalesce(p.department, ''), a.notified_at, a.activated_by_holder
		FROM account a JOIN person p ON p.id = a.person_id
		LEFT JOIN opposition o ON o.account_id = a.id AND o.undone_at IS NULL AND a.state = 'opposed'
		WHERE a.code_hash = $1 AND p.birth_date = $2 LIMIT 2`, codeHash, birth)
	if err != nil {
		return nil, fmt.Errorf("looking up code: %w", err)
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(&h.AccountID, &first, &h.State, &h.Deadline, &ref, &at, &channel, &o.PostmarkedOn,
			&h.Department, &h.NotifiedAt, &h.ActivatedByHolder); err != nil {
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
	if h.State == provisioning.StateOpposed {
		if ref == nil || at == nil || channel == nil {
			return nil, fmt.Errorf("looking up code: account %d is opposed without a standing opposition", h.AccountID)
		}
		o.Reference, o.At, o.Channel, o.FirstMasked = *ref, *at, *channel, h.FirstMasked
		if h.Deadline != nil {
			o.Deadline = *h.Deadline
		}
		h.Opposition = &o
	}
	return &h, nil
}

// standingReceipt reads the opposition standing on an account.
func standingReceipt(ctx context.Context, db provisioning.DBTX, accountID int64, first string) (*Receipt, error) {
	r := &Receipt{FirstMasked: MaskFirstName(first)}
	var deadline *time.Time // none when the person refused before any notice
	err := db.QueryRow(ctx, `SELECT o.reference, o.at, o.channel, a.deadline, o.postmarked_on FROM opposition o JOIN account a ON a.id = o.account_id
		WHERE o.account_id = $1 AND o.undone_at IS NULL`, accountID).Scan(&r.Reference, &r.At, &r.Channel, &deadline, &r.PostmarkedOn)
	if err != nil {
		return nil, fmt.Errorf("reading opposition: %w", err)
	}
	if deadline != nil {
		r.Deadline = *deadline
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
	// Late: the refusal, postmarked by the deadline, arrived after the
	// window activated the account, which is closed as opposed late.
	Late bool `json:"opposed_late,omitempty"`
	// BeforeAnyWave: the person had no account; the refusal is recorded on
	// them, and no wave will select them.
	BeforeAnyWave bool `json:"before_any_wave,omitempty"`
}

// Attempt is what someone gives to act on an account with its code: the
// code's lookup hash and the holder's birth date, the channel and actor
// recorded, and for a mailed opposition its postmark, which counts instead
// of today for the deadline.
type Attempt struct {
	CodeHash []byte
	Birth    time.Time
	Channel  string
	Actor    string
	Postmark *time.Time
}

// Oppose records an opposition for the account holding a.CodeHash, if the
// birth date matches and its window is open (at the postmark, for a mailed
// one). The database decides atomically: the account must still be
// notified with a deadline not passed at the moment the row is locked, so a
// concurrent window closing wins or loses whole.
func Oppose(ctx context.Context, st *provisioning.Store, a Attempt) (*OpposeResult, error) {
	codeHash, birth, postmark, channel, actor := a.CodeHash, a.Birth, a.Postmark, a.Channel, a.Actor
	var out *OpposeResult
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		effective, err := postmarkOr(postmark, now)
		if err != nil {
			return err
		}
		var postmarkDay any
		if postmark != nil {
			postmarkDay = postmark.Format(time.DateOnly)
		}
		var id int64
		var first string
		err = tx.QueryRow(ctx, `UPDATE account a SET state = 'opposed', opposed_at = $3
			FROM person p WHERE p.id = a.person_id AND a.code_hash = $1 AND p.birth_date = $2
			  AND a.state = 'notified' AND ens_local_deadline(a.deadline, p.department) >= $4 AND `+uniqueHolder+`
			  AND ($5::date IS NULL OR $5::date >= (a.notified_at AT TIME ZONE 'Europe/Paris')::date)
			RETURNING a.id, p.first_name`, codeHash, birth, now, effective, postmarkDay).Scan(&id, &first)
		if errors.Is(err, pgx.ErrNoRows) {
			h, err := FindHolder(ctx, tx, codeHash, birth)
			if err != nil {
				return err
			}
			inTime := h.Deadline != nil && !effective.After(provisioning.LocalDeadline(*h.Deadline, h.Department))
			switch {
			case h.State == provisioning.StateOpposed:
				out = &OpposeResult{Receipt: h.Opposition, AlreadyOpposed: true}
				return nil
			case postmark != nil && h.NotifiedAt != nil && provisioning.Day(effective).Before(provisioning.Day(*h.NotifiedAt)):
				return ErrPostmarkBeforeNotice
			case h.State == provisioning.StateActive && postmark != nil && inTime && h.ActivatedByHolder:
				return ErrActivatedBeforeArrival
			case h.State == provisioning.StateActive && postmark != nil && inTime:
				if _, err := tx.Exec(ctx, `SELECT 1 FROM account WHERE id = $1 AND state = 'active' FOR UPDATE`, h.AccountID); err != nil {
					return fmt.Errorf("locking the account: %w", err)
				}
				r, err := opposeLate(ctx, tx, st.AuditKey, opposition{account: h.AccountID, now: now, postmark: postmark,
					channel: channel, actor: actor})
				if err != nil {
					return err
				}
				r.FirstMasked = h.FirstMasked
				out = &OpposeResult{Receipt: r, Late: true}
				return nil
			case h.State == provisioning.StateNotified || h.State == provisioning.StateActive:
				return ErrWindowClosed
			}
			return ErrNoMatch // pending, cancelled, closed…: the code does not work
		}
		if err != nil {
			return fmt.Errorf("recording opposition: %w", err)
		}
		r, err := recordOpposition(ctx, tx, st.AuditKey, opposition{account: id, first: first, now: now, postmark: postmark,
			channel: channel, actor: actor})
		out = &OpposeResult{Receipt: r}
		return err
	})
	return out, err
}

// UndoOpposition withdraws an opposition while the window is open ("j'ai
// changé d'avis"): the account is notified again, with its same deadline.
func UndoOpposition(ctx context.Context, st *provisioning.Store, a Attempt) (*Receipt, error) {
	codeHash, birth, channel, actor := a.CodeHash, a.Birth, a.Channel, a.Actor
	var out *Receipt
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var id int64
		err := tx.QueryRow(ctx, `UPDATE account a SET state = 'notified', opposed_at = NULL
			FROM person p WHERE p.id = a.person_id AND a.code_hash = $1 AND p.birth_date = $2
			  AND a.state = 'opposed' AND ens_local_deadline(a.deadline, p.department) >= $3 AND `+uniqueHolder+` RETURNING a.id`, codeHash, birth, now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			if h, err := FindHolder(ctx, tx, codeHash, birth); err != nil {
				return err
			} else if h.State == provisioning.StateOpposed {
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
		if err := notice.TellChange(ctx, tx, id, provisioning.ChangeOppositionWithdrawn, now); err != nil {
			return err
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "account.opposition_withdrawn", AccountIDs: []int64{id},
			Details: map[string]any{"channel": channel, "reference": out.Reference}})
	})
	return out, err
}

// ReceiptByReference reads a receipt for download.
func ReceiptByReference(ctx context.Context, db provisioning.DBTX, ref string) (*Receipt, error) {
	if !provisioning.Storable(ref) {
		return nil, fmt.Errorf("receipt: %w", provisioning.ErrNotFound)
	}
	r := &Receipt{Reference: ref}
	var first string
	var deadline, undone *time.Time
	err := db.QueryRow(ctx, `SELECT o.at, o.channel, p.first_name, a.deadline, o.undone_at FROM opposition o
		LEFT JOIN account a ON a.id = o.account_id JOIN person p ON p.id = coalesce(a.person_id, o.person_id) WHERE o.reference = $1`, ref).
		Scan(&r.At, &r.Channel, &first, &deadline, &undone)
	if err != nil {
		return nil, provisioning.NotFound(err, "receipt")
	}
	if deadline != nil {
		r.Deadline = *deadline
	}
	r.FirstMasked, r.Undone = MaskFirstName(first), undone != nil
	return r, nil
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
