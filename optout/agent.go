package optout

import (
	"errors"
	"net/http"
	"time"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/window"
)

// agentRequest is what a call-centre agent's tool sends: the code and birth
// date the person reads out, or, when the person lost the code, the NIR and
// birth date once identity_checked_by has checked who they are. A mailed
// opposition carries its postmark (received_on).
type agentRequest struct {
	Code              string `json:"code,omitempty"`
	NIR               string `json:"nir,omitempty"`
	BirthDate         string `json:"birth_date"`
	IdentityCheckedBy string `json:"identity_checked_by,omitempty"`
	ReceivedOn        string `json:"received_on,omitempty"`
}

// NewAgentHandler serves the call-centre agents' API (POST, JSON): the ops
// area mounts it behind its sign-in, and agent names the signed-in agent,
// recorded as the actor of every opposition. An agent's mistakes count
// against that agent and the code, like anyone's; the person's NIR path
// needs a second name, the identity check's.
func NewAgentHandler(svc *Service, agent func(*http.Request) string) http.Handler {
	h := &Handler{svc: svc, log: svc.Log}
	return h.recoverer(http.MaxBytesHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.agentOppose(w, r, agent(r))
	}), maxBody))
}

func (h *Handler) agentOppose(w http.ResponseWriter, r *http.Request, agent string) {
	var in agentRequest
	if !h.decodeJSON(w, r, &in) {
		return
	}
	var postmark *time.Time
	if in.ReceivedOn != "" {
		d, err := time.Parse(time.DateOnly, in.ReceivedOn)
		if err != nil {
			h.apiError(w, errors.Join(errBadRequest, err))
			return
		}
		postmark = &d
	}
	var res *window.OpposeResult
	var err error
	switch {
	case (in.Code == "") == (in.NIR == ""):
		err = errors.Join(errBadRequest, errors.New("give the code, or the NIR with identity_checked_by"))
	case in.NIR != "":
		res, err = h.opposeByNIR(r, in, agent, postmark)
	default:
		res, err = h.svc.Oppose(r.Context(), Request{Code: in.Code, BirthDate: in.BirthDate, Client: "agent:" + agent,
			Channel: ChannelAgent, Actor: agent, PostmarkedOn: postmark})
	}
	if err != nil {
		h.apiError(w, err)
		return
	}
	h.writeOpposed(w, res)
}

// opposeByNIR records the opposition of a person who lost the code, after
// an agent checked their identity; the attempt counts against the agent.
func (h *Handler) opposeByNIR(r *http.Request, in agentRequest, agent string, postmark *time.Time) (*window.OpposeResult, error) {
	if in.IdentityCheckedBy == "" {
		return nil, errors.Join(errBadRequest, errors.New("identity_checked_by is required without the code"))
	}
	nir, err := provisioning.ParseNIR(in.NIR)
	if err != nil {
		return nil, errors.Join(errBadRequest, errors.New("the NIR is not valid"))
	}
	birth, err := ParseBirthDate(in.BirthDate)
	if err != nil {
		return nil, err
	}
	keys := []string{"ip:agent:" + agent}
	wait, err := h.svc.Limiter.Reserve(r.Context(), keys...)
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		return nil, &TooManyError{RetryAfter: wait}
	}
	res, err := window.OpposeByAgent(r.Context(), h.svc.Store(), window.AgentOpposition{NIR: nir, BirthDate: birth,
		Operator: agent, IdentityCheckedBy: in.IdentityCheckedBy, PostmarkedOn: postmark, DailyCap: h.svc.AgentDailyCap})
	h.svc.settle(r.Context(), keys, err)
	return res, err
}
