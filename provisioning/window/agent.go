package window

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// AgentOpposition is an opposition a call-centre agent records: with the
// code (Oppose), or without it once they have checked the person's identity
// (IdentityCheckedBy). A mailed one counts by its postmark (PostmarkedOn).
type AgentOpposition struct {
	NIR               provisioning.NIR
	BirthDate         time.Time
	Operator          string
	IdentityCheckedBy string
	PostmarkedOn      *time.Time
}

// ErrActivatedBeforeArrival — a mailed opposition posted in time arrived
// after the window closed and the account was activated; the person's
// refusal stands, but only an operator's deletion can honour it now.
var ErrActivatedBeforeArrival = errors.New("the account was activated before this opposition arrived, though it was posted in time: delete it on the person's request (ens account delete --reason request)")

// OpposeByAgent records an opposition without the code, for the person the
// NIR and birth date name, after an agent checked their identity. Both the
// operator and the agent who checked are audited. A postmark (mailed
// oppositions) counts instead of today for the deadline.
func OpposeByAgent(ctx context.Context, st *provisioning.Store, o AgentOpposition) (*OpposeResult, error) {
	if o.Operator == "" || o.IdentityCheckedBy == "" {
		return nil, errors.New("an opposition without the code needs the operator and the agent who checked the identity")
	}
	var out *OpposeResult
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		effective, err := postmarkOr(o.PostmarkedOn, now)
		if err != nil {
			return err
		}
		var id int64
		var first string
		var state provisioning.State
		var deadline *time.Time
		err = tx.QueryRow(ctx, `SELECT a.id, p.first_name, a.state, a.deadline FROM account a JOIN person p ON p.id = a.person_id
			WHERE p.nir = $1 AND p.birth_date = $2 FOR UPDATE OF a`, string(o.NIR), o.BirthDate).Scan(&id, &first, &state, &deadline)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoMatch
		}
		if err != nil {
			return fmt.Errorf("finding the account: %w", err)
		}
		switch {
		case state == provisioning.StateOpposed:
			r, err := standingReceipt(ctx, tx, id, first)
			out = &OpposeResult{Receipt: r, AlreadyOpposed: true}
			return err
		case state == provisioning.StateActive && o.PostmarkedOn != nil && deadline != nil && !effective.After(*deadline):
			return ErrActivatedBeforeArrival
		case state != provisioning.StateNotified:
			return ErrNoMatch
		case deadline == nil || effective.After(*deadline):
			return ErrWindowClosed
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'opposed', opposed_at = $2 WHERE id = $1`, id, now); err != nil {
			return fmt.Errorf("recording opposition: %w", err)
		}
		r, err := recordOpposition(ctx, tx, st.AuditKey, opposition{id, first, now, o.PostmarkedOn, provisioning.ChannelAgent, o.Operator, o.IdentityCheckedBy})
		out = &OpposeResult{Receipt: r}
		return err
	})
	return out, err
}

// postmarkOr is the moment a deadline is checked against: the postmark's
// day (at noon in Paris, so that a letter posted on the last day counts),
// or now.
func postmarkOr(postmark *time.Time, now time.Time) (time.Time, error) {
	if postmark == nil {
		return now, nil
	}
	y, m, d := postmark.Date()
	at := time.Date(y, m, d, 12, 0, 0, 0, provisioning.Paris)
	if provisioning.Day(at).After(provisioning.Day(now)) {
		return time.Time{}, fmt.Errorf("%w: a postmark in the future", provisioning.ErrState)
	}
	return at, nil
}

// opposition is one refusal to record: whose account (and their first name,
// for the receipt), when, by which channel and actor, the postmark of a
// mailed one, and the agent who checked the identity of one without code.
type opposition struct {
	account        int64
	first          string
	now            time.Time
	postmark       *time.Time
	channel, actor string
	checkedBy      string
}

// recordOpposition writes an opposition's row, cancels what is pending for
// its account, and appends the audit event under key; it returns the
// receipt.
func recordOpposition(ctx context.Context, tx pgx.Tx, key []byte, o opposition) (*Receipt, error) {
	id, first, now, postmark, channel, actor, checkedBy := o.account, o.first, o.now, o.postmark, o.channel, o.actor, o.checkedBy
	r := &Receipt{Reference: newReference(), At: now, Channel: channel, FirstMasked: MaskFirstName(first), PostmarkedOn: postmark}
	var pm any
	if postmark != nil {
		pm = postmark.Format(time.DateOnly)
	}
	// The opposition, the follow-up notices cancelled (nothing is left
	// pending for a person who opposed) and the audit event in two round
	// trips.
	var b pgx.Batch
	b.Queue(`WITH cancelled AS (UPDATE notice SET status = 'cancelled' WHERE account_id = $2 AND kind IN ('extension', 'resend', 'copy') AND status = 'pending')
		INSERT INTO opposition (reference, account_id, at, channel, actor, identity_checked_by, postmarked_on)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7::date) RETURNING (SELECT deadline FROM account WHERE id = $2)`,
		r.Reference, id, now, channel, actor, checkedBy, pm).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&r.Deadline); err != nil {
			return fmt.Errorf("recording opposition: %w", err)
		}
		return nil
	})
	details := map[string]any{"channel": channel, "reference": r.Reference}
	if checkedBy != "" {
		details["identity_checked_by"] = checkedBy
	}
	if pm != nil {
		details["postmarked_on"] = pm
	}
	return r, audit.AppendAfter(ctx, tx, &b, key, now, audit.Event{Actor: actor, Action: "account.opposed", AccountIDs: []int64{id}, Details: details})
}
