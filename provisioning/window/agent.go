package window

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/archive"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
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
	// DailyCap bounds the oppositions without the code one agent records
	// in a day (Paris), so that a stolen agent account cannot refuse for a
	// whole region; 0: no cap.
	DailyCap int
}

// AgentCapError — an agent reached their daily cap of oppositions without
// the code.
type AgentCapError struct{ Cap int }

func (e *AgentCapError) Error() string {
	return fmt.Sprintf("this agent reached the cap of %d oppositions without the code today (ENS_AGENT_DAILY_CAP)", e.Cap)
}

// ErrActivatedBeforeArrival — a mailed opposition posted in time arrived
// after its holder activated the account themselves; only an operator's
// deletion on the person's request can honour it now.
var ErrActivatedBeforeArrival = errors.New("the holder activated this account themselves before this opposition, posted in time, arrived: delete it on the person's request (ens account delete --reason request)")

// ErrPostmarkBeforeNotice — a mailed opposition with a code cannot have been
// posted before the notice carrying that code existed.
var ErrPostmarkBeforeNotice = errors.New("the postmark is earlier than the notice that carried this code: check the date")

// OpposeByAgent records an opposition without the code, for the person the
// NIR and birth date name, after an agent checked their identity. Both the
// operator and the agent who checked are audited. A postmark (mailed
// oppositions) counts instead of today for the deadline.
//
// A refusal is possible in every state before activation: a notified
// account until its deadline (in the person's time zone); a pending or
// unreachable one (the letter never came) at once; and a person no wave has
// selected yet, recorded on the person, whom no later wave selects. An
// account the window activated while a refusal postmarked in time was in
// the post is closed as opposed late (OpposeResult.Late).
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
		if o.DailyCap > 0 {
			var today int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM opposition WHERE actor = $1 AND identity_checked_by IS NOT NULL
				AND at >= $2`, o.Operator, provisioning.StartOfDay(now)).Scan(&today); err != nil {
				return fmt.Errorf("counting the agent's oppositions today: %w", err)
			}
			if today >= o.DailyCap {
				return &AgentCapError{Cap: o.DailyCap}
			}
		}
		var personID int64
		var first, department string
		var personOpposed *time.Time
		err = tx.QueryRow(ctx, `SELECT id, first_name, coalesce(department, ''), opposed_at FROM person
			WHERE nir = $1 AND birth_date = $2 FOR UPDATE`, string(o.NIR), o.BirthDate).Scan(&personID, &first, &department, &personOpposed)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoMatch
		}
		if err != nil {
			return fmt.Errorf("finding the person: %w", err)
		}
		rec := opposition{first: first, now: now, postmark: o.PostmarkedOn, channel: provisioning.ChannelAgent,
			actor: o.Operator, checkedBy: o.IdentityCheckedBy}
		var id int64
		var state provisioning.State
		var deadline *time.Time
		var byHolder bool
		err = tx.QueryRow(ctx, `SELECT id, state, deadline, activated_by_holder FROM account WHERE person_id = $1 FOR UPDATE`, personID).
			Scan(&id, &state, &deadline, &byHolder)
		if errors.Is(err, pgx.ErrNoRows) {
			// No wave has selected this person yet.
			if personOpposed != nil {
				r, err := standingPersonReceipt(ctx, tx, personID, first)
				out = &OpposeResult{Receipt: r, AlreadyOpposed: true}
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE person SET opposed_at = $2 WHERE id = $1`, personID, now); err != nil {
				return fmt.Errorf("recording opposition: %w", err)
			}
			rec.person = personID
			r, err := recordOpposition(ctx, tx, st.AuditKey, rec)
			out = &OpposeResult{Receipt: r, BeforeAnyWave: true}
			return err
		}
		if err != nil {
			return fmt.Errorf("finding the account: %w", err)
		}
		rec.account = id
		inTime := deadline != nil && !effective.After(provisioning.LocalDeadline(*deadline, department))
		switch {
		case state == provisioning.StateOpposed:
			r, err := standingReceipt(ctx, tx, id, first)
			out = &OpposeResult{Receipt: r, AlreadyOpposed: true}
			return err
		case state == provisioning.StateActive && o.PostmarkedOn != nil && inTime && byHolder:
			return ErrActivatedBeforeArrival
		case state == provisioning.StateActive && o.PostmarkedOn != nil && inTime:
			r, err := opposeLate(ctx, tx, st.AuditKey, rec)
			out = &OpposeResult{Receipt: r, Late: true}
			return err
		case state == provisioning.StateNotified && !inTime, state == provisioning.StateActive:
			return ErrWindowClosed
		case state != provisioning.StateNotified && state != provisioning.StatePending && state != provisioning.StateUnreachable:
			return ErrNoMatch
		}
		if _, err := tx.Exec(ctx, `UPDATE account SET state = 'opposed', opposed_at = $2, unreachable_reason = NULL, unreachable_at = NULL
			WHERE id = $1`, id, now); err != nil {
			return fmt.Errorf("recording opposition: %w", err)
		}
		if state != provisioning.StateNotified {
			// Refused before any notice reached them: nothing is sent now.
			if _, err := tx.Exec(ctx, `UPDATE notice SET status = 'cancelled' WHERE account_id = $1 AND status = 'pending'`, id); err != nil {
				return fmt.Errorf("cancelling the notices of an opposed account: %w", err)
			}
		}
		r, err := recordOpposition(ctx, tx, st.AuditKey, rec)
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

// opposition is one refusal to record: whose account — or, before any
// wave, whose person — and their first name, for the receipt; when, by
// which channel and actor, the postmark of a mailed one, and the agent who
// checked the identity of one without code.
type opposition struct {
	account        int64
	person         int64 // when there is no account
	first          string
	now            time.Time
	postmark       *time.Time
	channel, actor string
	checkedBy      string
}

// recordOpposition writes an opposition's row, cancels the follow-ups
// pending for its account, and appends the audit event under key; it
// returns the receipt, with the account's deadline when it has one.
func recordOpposition(ctx context.Context, tx pgx.Tx, key []byte, o opposition) (*Receipt, error) {
	r := &Receipt{Reference: newReference(), At: o.now, Channel: o.channel, FirstMasked: MaskFirstName(o.first), PostmarkedOn: o.postmark}
	var pm any
	if o.postmark != nil {
		pm = o.postmark.Format(time.DateOnly)
	}
	var account, person any
	event := audit.Event{Actor: o.actor, Action: "account.opposed"}
	if o.account != 0 {
		account, event.AccountIDs = o.account, []int64{o.account}
	} else {
		person, event.Action = o.person, "person.opposed"
	}
	// An agent's opposition is told to the person: an impostor who passed
	// the identity check is seen.
	if o.account != 0 && o.checkedBy != "" {
		if err := notice.TellChange(ctx, tx, o.account, provisioning.ChangeOpposedByAgent, o.now); err != nil {
			return nil, err
		}
	}
	// The opposition, the follow-up notices cancelled (nothing is left
	// pending for a person who opposed) and the audit event in two round
	// trips.
	var b pgx.Batch
	b.Queue(`WITH cancelled AS (UPDATE notice SET status = 'cancelled' WHERE account_id = $2 AND kind IN ('extension', 'resend', 'copy') AND status = 'pending')
		INSERT INTO opposition (reference, account_id, person_id, at, channel, actor, identity_checked_by, postmarked_on)
		VALUES ($1, $2, $8, $3, $4, $5, nullif($6, ''), $7::date) RETURNING (SELECT deadline FROM account WHERE id = $2)`,
		r.Reference, account, o.now, o.channel, o.actor, o.checkedBy, pm, person).QueryRow(func(row pgx.Row) error {
		var deadline *time.Time
		if err := row.Scan(&deadline); err != nil {
			return fmt.Errorf("recording opposition: %w", err)
		}
		if deadline != nil {
			r.Deadline = *deadline
		}
		return nil
	})
	event.Details = map[string]any{"channel": o.channel, "reference": r.Reference}
	if o.person != 0 {
		event.Details["person_id"] = o.person
	}
	if o.checkedBy != "" {
		event.Details["identity_checked_by"] = o.checkedBy
	}
	if pm != nil {
		event.Details["postmarked_on"] = pm
	}
	return r, audit.AppendAfter(ctx, tx, &b, key, o.now, event)
}

// standingPersonReceipt reads the opposition standing on a person no wave
// has selected.
func standingPersonReceipt(ctx context.Context, db provisioning.DBTX, personID int64, first string) (*Receipt, error) {
	r := &Receipt{FirstMasked: MaskFirstName(first)}
	err := db.QueryRow(ctx, `SELECT reference, at, channel, postmarked_on FROM opposition WHERE person_id = $1 AND undone_at IS NULL`,
		personID).Scan(&r.Reference, &r.At, &r.Channel, &r.PostmarkedOn)
	if err != nil {
		return nil, fmt.Errorf("reading opposition: %w", err)
	}
	return r, nil
}

// opposeLate honours a refusal postmarked by the deadline that arrived
// after the window activated the account: the opposition is recorded, and
// the account closed and archived as opposed late — its data purged within
// three months, never kept ten years.
func opposeLate(ctx context.Context, tx pgx.Tx, key []byte, o opposition) (*Receipt, error) {
	r, err := recordOpposition(ctx, tx, key, o)
	if err != nil {
		return nil, err
	}
	if _, err := archive.CloseAndArchive(ctx, tx, key, archive.Deletion{IDs: []int64{o.account}, Reason: archive.ReasonOpposedLate,
		Actor: o.actor, Now: o.now, Express: true}); err != nil {
		return nil, err
	}
	return r, audit.Append(ctx, tx, key, o.now, audit.Event{Actor: o.actor, Action: "account.opposed_late", AccountIDs: []int64{o.account},
		Details: map[string]any{"reference": r.Reference, "postmarked_on": o.postmark.Format(time.DateOnly)}})
}

// UndoByAgent withdraws, after an identity check, an opposition the person
// now regrets, by the path it came: a refusal before any wave is lifted from
// the person (the next wave selects them); an account opposed before any
// notice goes back to pending (ens wave retry sends its notice); an account
// opposed within its window is notified again, with its deadline, while the
// window is open in the person's time zone.
func UndoByAgent(ctx context.Context, st *provisioning.Store, o AgentOpposition) (*Receipt, error) {
	if o.Operator == "" || o.IdentityCheckedBy == "" {
		return nil, errors.New("withdrawing an opposition without the code needs the operator and the agent who checked the identity")
	}
	var out *Receipt
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var personID int64
		var department string
		err := tx.QueryRow(ctx, `SELECT id, coalesce(department, '') FROM person WHERE nir = $1 AND birth_date = $2 FOR UPDATE`,
			string(o.NIR), o.BirthDate).Scan(&personID, &department)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoMatch
		}
		if err != nil {
			return fmt.Errorf("finding the person: %w", err)
		}
		var id int64
		var state provisioning.State
		var deadline, notifiedAt *time.Time
		err = tx.QueryRow(ctx, `SELECT id, state, deadline, notified_at FROM account WHERE person_id = $1 FOR UPDATE`, personID).
			Scan(&id, &state, &deadline, &notifiedAt)
		event := audit.Event{Actor: o.Operator, Action: "account.opposition_withdrawn",
			Details: map[string]any{"channel": provisioning.ChannelAgent, "identity_checked_by": o.IdentityCheckedBy}}
		var standing string
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			standing = `person_id = $1`
			if tag, err := tx.Exec(ctx, `UPDATE person SET opposed_at = NULL WHERE id = $1 AND opposed_at IS NOT NULL`, personID); err != nil {
				return fmt.Errorf("withdrawing opposition: %w", err)
			} else if tag.RowsAffected() == 0 {
				return ErrNoMatch
			}
			event.Action, event.Details["person_id"] = "person.opposition_withdrawn", personID
			id = personID
		case err != nil:
			return fmt.Errorf("finding the account: %w", err)
		case state != provisioning.StateOpposed:
			return ErrNoMatch
		case notifiedAt == nil:
			standing, event.AccountIDs = `account_id = $1`, []int64{id}
			if _, err := tx.Exec(ctx, `UPDATE account SET state = 'pending', opposed_at = NULL WHERE id = $1`, id); err != nil {
				return fmt.Errorf("withdrawing opposition: %w", err)
			}
		case deadline == nil || now.After(provisioning.LocalDeadline(*deadline, department)):
			return ErrWindowClosed
		default:
			standing, event.AccountIDs = `account_id = $1`, []int64{id}
			if _, err := tx.Exec(ctx, `UPDATE account SET state = 'notified', opposed_at = NULL WHERE id = $1`, id); err != nil {
				return fmt.Errorf("withdrawing opposition: %w", err)
			}
		}
		out = &Receipt{Undone: true, At: now, Channel: provisioning.ChannelAgent}
		if err := tx.QueryRow(ctx, `UPDATE opposition SET undone_at = $2 WHERE `+standing+` AND undone_at IS NULL RETURNING reference`,
			id, now).Scan(&out.Reference); err != nil {
			return fmt.Errorf("withdrawing opposition: %w", err)
		}
		event.Details["reference"] = out.Reference
		if len(event.AccountIDs) == 1 {
			if err := notice.TellChange(ctx, tx, event.AccountIDs[0], provisioning.ChangeOppositionWithdrawn, now); err != nil {
				return err
			}
		}
		return audit.Append(ctx, tx, st.AuditKey, now, event)
	})
	return out, err
}
