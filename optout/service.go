package optout

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/window"
)

// Channels an opposition arrives by.
const (
	ChannelWeb   = "web"
	ChannelAPI   = "api"
	ChannelAgent = provisioning.ChannelAgent
)

// Errors a person can be told about. A wrong code and a wrong birth date are
// the same error (provisioning.ErrNoMatch), whether the code exists or not.
var (
	ErrBirthDate = errors.New("birth date is not a valid date")
)

// TooManyError says to slow down: try again after RetryAfter.
type TooManyError struct{ RetryAfter time.Duration }

func (e *TooManyError) Error() string {
	return fmt.Sprintf("too many attempts; retry in %s", e.RetryAfter)
}

// Service is the opposition logic every channel shares.
type Service struct {
	Pool    *pgxpool.Pool
	Key     Key
	Limiter *Limiter
	Clock   provisioning.Clock
	// AgentDailyCap bounds each agent's oppositions without the code a day
	// (ENS_AGENT_DAILY_CAP; 0: no cap).
	AgentDailyCap int
	// AuditKey keys the audit events of the changes the form makes
	// (ENS_AUDIT_KEY).
	AuditKey []byte
	// AuditPreviousKeys are the audit keys rotated out, oldest first, for
	// the reports that verify the log (ENS_AUDIT_PREVIOUS_KEYS_FILE).
	AuditPreviousKeys [][]byte
	Log               *slog.Logger
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed (ENS_TRUSTED_PROXIES, CIDRs); see ClientAddr.
	TrustedProxies []netip.Prefix
	// Metrics measure the public site's requests (nil: none).
	Metrics *Metrics
	// ProofOfWork offers a waiting client a challenge to solve instead
	// (nil: it waits).
	ProofOfWork *ProofOfWork
}

// Store is the service's database, clock and audit key, as the
// capabilities take them.
func (s *Service) Store() *provisioning.Store {
	return &provisioning.Store{Pool: s.Pool, Clock: s.Clock, AuditKey: s.AuditKey}
}

// Request is one attempt: what the person typed, and where it came from.
type Request struct {
	Code      string
	BirthDate string
	Client    string // client address, for rate limiting
	Channel   string
	Actor     string
	// Proof is a solved challenge (the form's "altcha" field): it lets this
	// attempt through a waiting address, once.
	Proof string
	// Pass is what the form's pages carry after a successful step: it
	// lets the same code's next steps through a waiting address.
	Pass string
	// PostmarkedOn: a mailed opposition keyed by an agent counts by it.
	PostmarkedOn *time.Time
}

// ParseBirthDate accepts YYYY-MM-DD and JJ/MM/AAAA.
func ParseBirthDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.DateOnly, "02/01/2006", "2/1/2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, ErrBirthDate
}

// check validates a request and returns its lookup hash and birth date,
// once the guess it is has been put to the rate limits: counted when
// malformed or wrong (provisioning.ErrNoMatch, answered without a
// transaction), free when the code and birth date are an account's. One
// round trip.
//
// A client whose address must wait still gets through with a solved
// challenge, or with the pass of the code it is proving: that attempt counts
// against the code only.
func (s *Service) check(ctx context.Context, r Request) ([]byte, time.Time, error) {
	code, err := ParseCode(r.Code)
	var keys []string
	var h []byte
	var birth time.Time
	exempt := false
	if err == nil {
		h = s.Key.LookupHash(code)
		keys = append(keys, "code:"+hex.EncodeToString(h[:8]))
		birth, err = ParseBirthDate(r.BirthDate)
		exempt = r.Pass != "" && s.passValid(r.Pass, h)
	}
	if !exempt && r.Proof != "" && s.ProofOfWork != nil {
		spent, perr := s.ProofOfWork.spend(ctx, s.Limiter, r.Proof)
		if perr != nil {
			return nil, time.Time{}, perr
		}
		exempt = spent
	}
	if !exempt {
		keys = append(keys, "ip:"+r.Client)
	}
	var b pgx.Batch
	var g Guess
	if err != nil {
		h = nil // malformed: counted, whatever the code
	}
	s.Limiter.QueueGuess(&b, keys, h, birth, &g)
	if berr := s.Pool.SendBatch(ctx, &b).Close(); berr != nil {
		return nil, time.Time{}, berr
	}
	switch {
	case g.Wait > 0:
		return nil, time.Time{}, &TooManyError{RetryAfter: g.Wait}
	case err != nil:
		return nil, time.Time{}, err // malformed: the attempt counted
	case !g.Matched:
		return nil, time.Time{}, window.ErrNoMatch // a guess that missed: it counted
	}
	return h, birth, nil
}

// settle takes back an attempt Reserve counted unless it was a guess that
// missed: a wrong pair counts, anything else (a success, a closed window)
// does not.
func (s *Service) settle(ctx context.Context, keys []string, err error) {
	if !errors.Is(err, window.ErrNoMatch) {
		if rerr := s.Limiter.Refund(context.WithoutCancel(ctx), keys...); rerr != nil {
			s.Log.Error("opposition rate limits", "error", rerr)
		}
	}
}

// Lookup is step one: whose account is it (first name masked), and is it
// already opposed?
func (s *Service) Lookup(ctx context.Context, r Request) (*window.Holder, error) {
	h, birth, err := s.check(ctx, r)
	if err != nil {
		return nil, err
	}
	holder, err := window.FindHolder(ctx, s.Pool, h, birth)
	if err == nil && holder.State != provisioning.StateNotified && holder.State != provisioning.StateOpposed &&
		holder.State != provisioning.StateActive {
		err = window.ErrNoMatch
	}
	// An opposed account is answered as opposed, window open or not: the
	// form, the API and the CLI all say "opposition already recorded".
	if err == nil && holder.State != provisioning.StateOpposed &&
		(holder.Deadline == nil || provisioning.LocalDeadline(*holder.Deadline, holder.Department).Before(s.Clock.Now()) ||
			holder.State == provisioning.StateActive) {
		err = window.ErrWindowClosed
	}
	return holder, err
}

// Oppose is step two: record the opposition.
func (s *Service) Oppose(ctx context.Context, r Request) (*window.OpposeResult, error) {
	h, birth, err := s.check(ctx, r)
	if err != nil {
		return nil, err
	}
	res, err := window.Oppose(ctx, s.Store(), window.Attempt{CodeHash: h, Birth: birth, Channel: r.Channel, Actor: r.Actor, Postmark: r.PostmarkedOn})
	if err == nil {
		s.Log.Info("opposition recorded", "channel", r.Channel, "reference", res.Receipt.Reference, "already", res.AlreadyOpposed)
	}
	return res, err
}

// Activate activates the holder's account now, within the window, at their
// request: counted against the same limits as an opposition.
func (s *Service) Activate(ctx context.Context, r Request) (*window.Activation, error) {
	h, birth, err := s.check(ctx, r)
	if err != nil {
		return nil, err
	}
	act, err := window.ActivateEarly(ctx, s.Store(), window.Attempt{CodeHash: h, Birth: birth, Channel: r.Channel, Actor: r.Actor})
	if err == nil {
		s.Log.Info("account activated by its holder", "channel", r.Channel)
	}
	return act, err
}

// Undo withdraws an opposition within the window.
func (s *Service) Undo(ctx context.Context, r Request) (*window.Receipt, error) {
	h, birth, err := s.check(ctx, r)
	if err != nil {
		return nil, err
	}
	rec, err := window.UndoOpposition(ctx, s.Store(), window.Attempt{CodeHash: h, Birth: birth, Channel: r.Channel, Actor: r.Actor})
	return rec, err
}
