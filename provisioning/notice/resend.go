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

// A person who lost their code may have it sent again, through the channel
// on file, at most once a day and MaxResends times per account: the call
// centre cannot be used to flood someone's letter box, and a code sent over
// and over is a code more exposed.
const (
	MaxResends     = 3
	ResendInterval = 24 * time.Hour
)

// ErrResendLimit — the person's code was re-sent too recently or too often.
var ErrResendLimit = errors.New("the code was already re-sent")

// ResendRequest is an operator's request to send a person's code again.
type ResendRequest struct {
	NIR      provisioning.NIR
	Operator string
	// PostDelay and Delivery are how long a letter takes to reach its
	// person once rendered (the printer's post delay, La Poste's delivery
	// to the person's destination): a letter that would arrive after the
	// deadline is not sent.
	PostDelay time.Duration
	Delivery  provisioning.Delivery
}

// Resend is what ResendCode did.
type Resend struct {
	AccountID int64     `json:"account_id"`
	NoticeID  int64     `json:"notice_id"`
	Reference string    `json:"reference"`
	Channel   string    `json:"channel"`
	Seq       int       `json:"seq"`
	Deadline  time.Time `json:"deadline"`
}

// ResendCode sends a notified person's code again — the same code, derived
// when the notice is rendered, never stored — through the channel that
// reached them: by email when an email of theirs was accepted and the
// registry still has an address, by letter to the registry's postal address
// otherwise; never to an address given on the phone. The deadline is the
// account's, unchanged. Refused (ErrState) for an account whose window is
// not open, and (ErrResendLimit) within ResendInterval of the last resend or
// after MaxResends. The request is audited with the operator's name; the
// notice is queued in the same transaction (emails, or letters for its
// department).
func ResendCode(ctx context.Context, st *provisioning.Store, req ResendRequest, emails func(context.Context, pgx.Tx) error,
	letters provisioning.LetterFunc) (*Resend, error) {
	var out *Resend
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		acc, err := provisioning.AccountByNIR(ctx, tx, req.NIR, true)
		if err != nil {
			return err
		}
		if acc.State != provisioning.StateNotified || acc.Deadline == nil || acc.Deadline.Before(now) {
			return fmt.Errorf("%w: the account is %s; a code is re-sent only while its window is open", provisioning.ErrState, acc.State)
		}
		var sent int
		var last *time.Time
		var emailed bool
		// A resend's fallback letter keeps its seq: seq counts requests.
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq) FILTER (WHERE kind = 'resend'), 0), max(created_at) FILTER (WHERE kind = 'resend'),
			  coalesce(bool_or(channel = 'email' AND status = 'sent'), false)
			FROM notice WHERE account_id = $1`, acc.ID).Scan(&sent, &last, &emailed); err != nil {
			return fmt.Errorf("reading the account's notices: %w", err)
		}
		if sent >= MaxResends || (last != nil && now.Sub(*last) < ResendInterval) {
			next := "never: the most a person is sent"
			if sent < MaxResends {
				next = "from " + last.Add(ResendInterval).In(provisioning.Paris).Format("2006-01-02 15:04")
			}
			return fmt.Errorf("%w %d time(s), last on %s; again %s", ErrResendLimit, sent, last.In(provisioning.Paris).Format(time.DateOnly), next)
		}
		ts, err := targetsOf(ctx, tx, []int64{acc.ID}, now)
		if err != nil {
			return err
		}
		if len(ts) != 1 {
			return fmt.Errorf("finding the recipient of account %d: %w", acc.ID, provisioning.ErrNotFound)
		}
		t := ts[0]
		channel := provisioning.ChannelLetter
		switch {
		case emailed && t.Email != "":
			channel = provisioning.ChannelEmail
		case !t.Deliverable():
			return fmt.Errorf("%w: no email reached this person and the registry has no complete postal address", provisioning.ErrState)
		case now.Add(req.PostDelay + req.Delivery.For(t.Department)).After(*acc.Deadline):
			return fmt.Errorf("%w: a letter sent now would arrive after the deadline (%s); record the opposition through an agent (ens optout --nir)",
				provisioning.ErrState, acc.Deadline.In(provisioning.Paris).Format(time.DateOnly))
		}
		out = &Resend{AccountID: acc.ID, Channel: channel, Seq: sent + 1, Deadline: *acc.Deadline}
		var dept *string
		if channel == provisioning.ChannelLetter {
			dept = &t.Department
		}
		if err := tx.QueryRow(ctx, `INSERT INTO notice (account_id, kind, channel, seq, department) VALUES ($1, 'resend', $2, $3, $4) RETURNING id`,
			acc.ID, channel, out.Seq, dept).Scan(&out.NoticeID); err != nil {
			return fmt.Errorf("creating the resend notice: %w", err)
		}
		out.Reference = fmt.Sprintf("ENS-%09d", out.NoticeID)
		if channel == provisioning.ChannelEmail {
			err = emails(ctx, tx)
		} else {
			err = letters(ctx, tx, acc.WaveID, []string{t.Department})
		}
		if err != nil {
			return fmt.Errorf("queueing the resend notice: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: req.Operator, Action: "account.code_resent", WaveID: &acc.WaveID,
			AccountIDs: []int64{acc.ID}, Details: map[string]any{"channel": channel, "seq": out.Seq, "notice_id": out.NoticeID}})
	})
	return out, err
}
