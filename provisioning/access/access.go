// Package access answers a person's right of access (RGPD art. 15): what
// ens holds about them — their registry data, every state of their account
// with its time, every notice (never its code), their oppositions, the
// audit events about their account, and how long each thing is kept. Every
// export is itself audited as an access.
//
// It imports the provisioning root and audit.
package access

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// Export is everything ens holds about one person. It holds their personal
// data: it goes to them, never to a log.
type Export struct {
	At      time.Time             `json:"exported_at"`
	Person  map[string]any        `json:"registry_data"`
	Account *provisioning.Account `json:"account,omitempty"`
	// States is every change of the account's state, in order (the change
	// feed's record).
	States      []State       `json:"states"`
	Notices     []Notice      `json:"notices"`
	Oppositions []Opposition  `json:"oppositions"`
	Events      []audit.Event `json:"audit_events"`
	Retention   []string      `json:"retention"`
}

// State is one change of the account's state.
type State struct {
	At       time.Time `json:"at"`
	State    string    `json:"state"`
	Previous string    `json:"previous,omitempty"`
	Cause    string    `json:"cause,omitempty"`
}

// Notice is one notice sent, or meant to be, to the person or for them:
// never its code.
type Notice struct {
	Kind       string     `json:"kind"`
	Channel    string     `json:"channel"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	SentAt     *time.Time `json:"sent_at,omitempty"`
	Deadline   *time.Time `json:"deadline,omitempty"`
	ReturnedOn *time.Time `json:"returned_on,omitempty"`
	Outcome    string     `json:"outcome,omitempty"`
}

// Opposition is one refusal and what became of it.
type Opposition struct {
	Reference    string     `json:"reference"`
	At           time.Time  `json:"at"`
	Channel      string     `json:"channel"`
	PostmarkedOn *time.Time `json:"postmarked_on,omitempty"`
	WithdrawnAt  *time.Time `json:"withdrawn_at,omitempty"`
}

// Of reads everything held about the person nir names, and audits the
// access (by actor, naming the account, never the NIR).
func Of(ctx context.Context, st *provisioning.Store, nir provisioning.NIR, actor string) (*Export, error) {
	out := &Export{At: st.Clock.Now(), States: []State{}, Notices: []Notice{}, Oppositions: []Opposition{}, Events: []audit.Event{}}
	if err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error { return out.read(ctx, tx, st, nir, actor) }); err != nil {
		return nil, err
	}
	return out, nil
}

// read fills out, in tx, with everything held about the person nir names, and
// audits the access.
func (out *Export) read(ctx context.Context, tx pgx.Tx, st *provisioning.Store, nir provisioning.NIR, actor string) error {
	var personID int64
	var row []byte
	err := tx.QueryRow(ctx, `SELECT id, (to_jsonb(p) - 'id' - 'updated_at')::text FROM person p WHERE nir = $1`, string(nir)).Scan(&personID, &row)
	if err != nil {
		return provisioning.NotFound(err, "person "+nir.Masked())
	}
	if err := json.Unmarshal(row, &out.Person); err != nil {
		return fmt.Errorf("reading registry data: %w", err)
	}
	if acc, err := provisioning.GetAccount(ctx, tx, nir); err == nil && acc.ID != 0 {
		out.Account = acc
	}
	accountID := int64(0)
	if out.Account != nil {
		accountID = out.Account.ID
	}
	if err := collect(ctx, tx, &out.States, `SELECT at, state::text, coalesce(previous::text, ''), coalesce(cause, '') FROM account_change
		WHERE account_id = $1 ORDER BY seq`, accountID, func(r pgx.Row, s *State) error {
		return r.Scan(&s.At, &s.State, &s.Previous, &s.Cause)
	}); err != nil {
		return err
	}
	if err := collect(ctx, tx, &out.Notices, `SELECT kind, channel, status, created_at, sent_at, deadline, returned_on, coalesce(error, '')
		FROM notice WHERE account_id = $1 ORDER BY id`, accountID, func(r pgx.Row, n *Notice) error {
		return r.Scan(&n.Kind, &n.Channel, &n.Status, &n.CreatedAt, &n.SentAt, &n.Deadline, &n.ReturnedOn, &n.Outcome)
	}); err != nil {
		return err
	}
	if err := collect(ctx, tx, &out.Oppositions, `SELECT reference, at, channel, postmarked_on, undone_at FROM opposition
		WHERE account_id = $1 OR person_id = $2 ORDER BY at`, accountID, func(r pgx.Row, o *Opposition) error {
		return r.Scan(&o.Reference, &o.At, &o.Channel, &o.PostmarkedOn, &o.WithdrawnAt)
	}, personID); err != nil {
		return err
	}
	if err := collect(ctx, tx, &out.Events, `SELECT id, at, actor, action, wave_id, account_ids, details::text FROM audit_event
		WHERE $1 = ANY(account_ids) OR (details::jsonb -> 'person_ids') @> to_jsonb($2::bigint) OR (details::jsonb ->> 'person_id')::bigint = $2
		ORDER BY id`, accountID, func(r pgx.Row, e *audit.Event) error {
		var details string
		if err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.WaveID, &e.AccountIDs, &details); err != nil {
			return err
		}
		e.AccountIDs = nil // other people's accounts an event names are not this person's data
		return json.Unmarshal([]byte(details), &e.Details)
	}, personID); err != nil {
		return err
	}
	out.Retention = retention(out.Account)
	event := audit.Event{Actor: actor, Action: "person.data_exported", Details: map[string]any{"person_id": personID}}
	if accountID != 0 {
		event.AccountIDs = []int64{accountID}
	}
	return audit.Append(ctx, tx, st.AuditKey, out.At, event)
}

// collect runs q with args and scans each row into a new element of out.
func collect[T any](ctx context.Context, tx pgx.Tx, out *[]T, q string, first any, scan func(pgx.Row, *T) error, more ...any) error {
	rows, err := tx.Query(ctx, q, append([]any{first}, more...)...)
	if err != nil {
		return fmt.Errorf("reading a person's data: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return fmt.Errorf("reading a person's data: %w", err)
		}
		*out = append(*out, v)
	}
	return rows.Err()
}

// retention says, in French for the person, how long what is held is kept.
func retention(acc *provisioning.Account) []string {
	out := []string{"Les données du registre sont conservées tant que la personne est assurée."}
	switch {
	case acc == nil:
	case acc.Archive != nil && acc.Archive.PurgeDue != nil:
		out = append(out, "Le profil fermé sera supprimé au plus tard le "+provisioning.FrenchDate(*acc.Archive.PurgeDue)+".")
	case acc.Archive != nil && acc.Archive.RetainUntil != nil:
		out = append(out, "Le profil fermé est archivé jusqu'au "+provisioning.FrenchDate(*acc.Archive.RetainUntil)+
			" (dix ans), puis supprimé.")
	default:
		out = append(out, "Le journal d'audit, sans donnée d'identification, est conservé pour prouver les décisions prises.")
	}
	return out
}
