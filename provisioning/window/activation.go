package window

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// ErrAlreadyActive — the profile is active already (activated early, or its
// window ended).
var ErrAlreadyActive = errors.New("the profile is already active")

// Activation is what the holder is told after activating early.
type Activation struct {
	FirstMasked string    `json:"first_name"`
	At          time.Time `json:"activated_at"`
	Channel     string    `json:"channel"`
}

// ActivateEarly activates, at the holder's request, the account a code and
// birth date name while its window is open: it is active at once and can no
// longer be opposed (it can be closed). The code is the holder's proof of
// having been told, as an opposition's is. An opposed account must have its
// opposition withdrawn first (ErrState); a closed window answers
// ErrWindowClosed, and anything else ErrNoMatch, as opposing does.
func ActivateEarly(ctx context.Context, st *provisioning.Store, a Attempt) (*Activation, error) {
	codeHash, birth, channel, actor := a.CodeHash, a.Birth, a.Channel, a.Actor
	var out *Activation
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var id int64
		var first string
		err := tx.QueryRow(ctx, `UPDATE account a SET state = 'active', activated_at = $3, activated_by_holder = true
			FROM person p WHERE p.id = a.person_id AND a.code_hash = $1 AND p.birth_date = $2
			  AND a.state = 'notified' AND ens_local_deadline(a.deadline, p.department) >= $3 AND `+uniqueHolder+`
			RETURNING a.id, p.first_name`, codeHash, birth, now).Scan(&id, &first)
		if errors.Is(err, pgx.ErrNoRows) {
			h, err := FindHolder(ctx, tx, codeHash, birth)
			if err != nil {
				return err
			}
			switch h.State {
			case provisioning.StateOpposed:
				return fmt.Errorf("%w: an opposition is recorded; withdraw it first to activate the profile", provisioning.ErrState)
			case provisioning.StateActive:
				return ErrAlreadyActive
			case provisioning.StateNotified:
				return ErrWindowClosed
			}
			return ErrNoMatch
		}
		if err != nil {
			return fmt.Errorf("activating the account: %w", err)
		}
		out = &Activation{FirstMasked: MaskFirstName(first), At: now, Channel: channel}
		if err := notice.TellChange(ctx, tx, id, provisioning.ChangeActivatedByHolder, now); err != nil {
			return err
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "account.activated_by_holder", AccountIDs: []int64{id},
			Details: map[string]any{"channel": channel}})
	})
	return out, err
}
