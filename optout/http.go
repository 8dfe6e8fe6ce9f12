package optout

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/window"
)

//go:embed web/*
var webFS embed.FS

var pageTmpl = template.Must(template.ParseFS(webFS, "web/page.html"))

// maxBody caps request bodies: a code and a date fit in far less.
const maxBody = 4 << 10

// Handler serves the public site and the call centre's JSON API.
type Handler struct {
	svc *Service
	mux *http.ServeMux
	log *slog.Logger
}

// NewHandler builds the public handler: security headers, body limits and
// cross-origin (CSRF) protection around every route.
func NewHandler(svc *Service) http.Handler {
	h := &Handler{svc: svc, mux: http.NewServeMux(), log: svc.Log}
	h.mux.HandleFunc("GET /{$}", h.form)
	h.mux.HandleFunc("GET /style.css", webFile("style.css", "text/css; charset=utf-8"))
	h.mux.Handle("GET /dsfr/", vendoredAssets())
	h.mux.Handle("GET /altcha/", vendoredAssets())
	h.mux.HandleFunc("GET /defi.js", webFile("defi.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("POST /verifier", h.formStep(h.verify))
	h.mux.HandleFunc("POST /confirmer", h.formStep(h.confirm))
	h.mux.HandleFunc("POST /annuler", h.formStep(h.undo))
	h.mux.HandleFunc("POST /activer", h.formStep(h.activate))
	h.mux.HandleFunc("POST /api/v1/activations", h.apiActivate)
	h.mux.HandleFunc("GET /recu/{ref}", h.receiptPDF)
	h.mux.HandleFunc("POST /api/v1/oppositions", h.apiOppose)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := svc.Pool.Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n") //nolint:errcheck
	})
	csrf := http.NewCrossOriginProtection()
	return svc.Metrics.instrument(securityHeaders(csrf.Handler(h.recoverer(h.mux))))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self'; font-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Strict-Transport-Security", "max-age=63072000")
		hd.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged 500 rather than a dropped connection.
func (h *Handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				h.log.Error("handler panic", "path", r.URL.Path, "panic", v)
				http.Error(w, "Erreur interne", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// outcome maps an error to what the person is told: one place for statuses
// and messages. A wrong pair gets the same answer whether the code exists.
type outcome struct {
	status  int
	code    string // JSON status
	message string // French, for the person
	field   string // which form field it concerns
}

func outcomeOf(err error) outcome {
	var tm *TooManyError
	var mbe *http.MaxBytesError
	var capped *window.AgentCapError
	switch {
	case errors.As(err, &capped):
		return outcome{http.StatusTooManyRequests, "agent_daily_cap", fmt.Sprintf("Plafond atteint : %d oppositions sans code par agent et par jour.", capped.Cap), ""}
	case errors.As(err, &tm):
		return outcome{http.StatusTooManyRequests, "too_many_attempts", "Trop de tentatives. Merci de réessayer dans quelques minutes.", ""}
	case errors.Is(err, ErrMistyped):
		return outcome{http.StatusUnprocessableEntity, "mistyped", "Ce code comporte une erreur de saisie : vérifiez chaque caractère.", "code"}
	case errors.Is(err, ErrMalformed):
		return outcome{http.StatusBadRequest, "malformed", "Le code d'opposition compte 12 caractères (chiffres et lettres).", "code"}
	case errors.Is(err, ErrBirthDate):
		return outcome{http.StatusBadRequest, "birth_date_invalid", "La date de naissance doit être au format JJ/MM/AAAA.", "birth_date"}
	case errors.Is(err, window.ErrNoMatch):
		return outcome{http.StatusNotFound, "no_match", "Le code ou la date de naissance est incorrect.", "code"}
	case errors.Is(err, window.ErrWindowClosed):
		return outcome{http.StatusGone, "window_closed", "Le délai d'opposition est terminé : ce code ne peut plus être utilisé. Vous pouvez fermer le profil à tout moment depuis Mon espace santé.", ""}
	case errors.Is(err, window.ErrAlreadyActive):
		return outcome{http.StatusConflict, "already_active", "Ce profil est déjà activé. Vous pouvez le fermer à tout moment depuis Mon espace santé.", ""}
	case errors.Is(err, window.ErrActivatedBeforeArrival):
		return outcome{http.StatusConflict, "activated_before_arrival", "La personne a activé elle-même son profil avant l'arrivée de ce courrier, posté dans les délais : seule une fermeture à sa demande peut l'honorer.", ""}
	case errors.Is(err, window.ErrPostmarkBeforeNotice):
		return outcome{http.StatusUnprocessableEntity, "postmark_before_notice", "Le cachet de la poste est antérieur à l'envoi du code : vérifiez la date.", "received_on"}
	case errors.Is(err, provisioning.ErrState):
		return outcome{http.StatusConflict, "state", "Cette demande ne correspond pas à l'état du profil.", ""}
	case errors.As(err, &mbe):
		return outcome{http.StatusRequestEntityTooLarge, "too_large", "Requête trop volumineuse.", ""}
	case errors.Is(err, errBadRequest):
		return outcome{http.StatusBadRequest, "bad_request", "Requête invalide.", ""}
	case errors.Is(err, context.Canceled):
		return outcome{499, "cancelled", "", ""}
	}
	return outcome{http.StatusInternalServerError, "error", "Le service est momentanément indisponible. Merci de réessayer plus tard.", ""}
}

var errBadRequest = errors.New("bad request")

type pageData struct {
	Title, Step, Notice, Error, ErrorField        string
	Code, BirthDate, FirstMasked, Deadline, Phone string
	Reference, At                                 string
	// Pass carries a proven code's next steps through a waiting address.
	Pass string
	// Challenge is a proof-of-work challenge (JSON) a waiting client may
	// solve instead of waiting.
	Challenge string
}

func (h *Handler) render(w http.ResponseWriter, status int, d pageData) {
	d.Phone = "34 22"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTmpl.ExecuteTemplate(w, "page", d); err != nil {
		h.log.Error("rendering page", "error", err)
	}
}

// vendoredAssets serves the front-end assets vendored from npm, embedded in
// the binary (no third-party host): the State's design system (DSFR: its
// stylesheet, the Marianne fonts and the icons it references) and the
// proof-of-work widget (ALTCHA: its script, stylesheet, French strings and
// PBKDF2 worker). They change only with a new binary, so browsers may keep
// them a day.
func vendoredAssets() http.Handler {
	files := http.FileServerFS(webFS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no listing
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/web" + r.URL.Path
		files.ServeHTTP(w, r2)
	})
}

// webFile serves one of the site's own files: its stylesheet, and the
// script that registers the widget's PBKDF2 worker (served here: the CSP
// allows no worker from elsewhere, nor inline code).
func webFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		b, _ := webFS.ReadFile("web/" + name)
		w.Header().Set("Content-Type", contentType)
		w.Write(b) //nolint:errcheck
	}
}

func (h *Handler) form(w http.ResponseWriter, _ *http.Request) {
	h.render(w, http.StatusOK, pageData{Title: "Refuser la création de mon profil", Step: "form"})
}

func (h *Handler) request(r *http.Request, channel string) (Request, error) {
	if err := r.ParseForm(); err != nil {
		return Request{}, errors.Join(errBadRequest, err)
	}
	return Request{Code: r.PostForm.Get("code"), BirthDate: r.PostForm.Get("birth_date"), Client: h.svc.ClientAddr(r),
		Channel: channel, Actor: audit.ActorPublic, Proof: r.PostForm.Get("altcha"), Pass: r.PostForm.Get("pass")}, nil
}

func (h *Handler) formError(w http.ResponseWriter, req Request, err error) {
	o := outcomeOf(err)
	if o.status >= 500 {
		h.log.Error("opposition form", "error", err)
	}
	d := pageData{Title: "Refuser la création de mon profil", Step: "form", Error: o.message,
		ErrorField: o.field, Code: req.Code, BirthDate: req.BirthDate}
	var tm *TooManyError
	if errors.As(err, &tm) {
		w.Header().Set("Retry-After", strconv.Itoa(int(tm.RetryAfter.Seconds())+1))
		d.Error = "Trop de tentatives depuis votre connexion. Vous pourrez réessayer " + frenchWait(tm.RetryAfter) + "."
		if h.svc.ProofOfWork != nil {
			if d.Challenge, err = h.svc.ProofOfWork.Challenge(); err != nil {
				h.log.Error("proof-of-work challenge", "error", err)
			}
		}
	}
	h.render(w, o.status, d)
}

// frenchWait says how long to wait, rounded up: "dans 23 secondes",
// "dans 4 minutes".
func frenchWait(d time.Duration) string {
	switch s := int(d.Seconds()) + 1; {
	case s < 2:
		return "dans une seconde"
	case s < 60:
		return fmt.Sprintf("dans %d secondes", s)
	case s <= 60:
		return "dans une minute"
	default:
		return fmt.Sprintf("dans %d minutes", (s+59)/60)
	}
}

// formStep serves one step of the public form: the request is read and
// checked, the step runs, and any error shows the form again with it.
func (h *Handler) formStep(step func(context.Context, Request) (pageData, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := h.request(r, ChannelWeb)
		if err == nil {
			var d pageData
			if d, err = step(r.Context(), req); err == nil {
				d.Pass = h.svc.passFor(req)
				h.render(w, http.StatusOK, d)
				return
			}
		}
		h.formError(w, req, err)
	}
}

// verify shows whose profile the code opens (first name masked) and asks
// for confirmation, or the receipt of a standing opposition.
func (h *Handler) verify(ctx context.Context, req Request) (pageData, error) {
	holder, err := h.svc.Lookup(ctx, req)
	if err != nil {
		return pageData{}, err
	}
	d := pageData{Code: req.Code, BirthDate: req.BirthDate, FirstMasked: holder.FirstMasked}
	if holder.Deadline != nil {
		d.Deadline = provisioning.FrenchDeadline(*holder.Deadline)
	}
	if holder.Opposition != nil {
		d.Title, d.Step, d.Reference, d.At = "Opposition déjà enregistrée", "opposed", holder.Opposition.Reference, provisioning.FrenchDateTime(holder.Opposition.At)
	} else {
		d.Title, d.Step = "Confirmez votre opposition", "confirm"
	}
	return d, nil
}

// confirm records the opposition and shows its receipt.
func (h *Handler) confirm(ctx context.Context, req Request) (pageData, error) {
	res, err := h.svc.Oppose(ctx, req)
	if err != nil {
		return pageData{}, err
	}
	d := pageData{Code: req.Code, BirthDate: req.BirthDate, FirstMasked: res.Receipt.FirstMasked,
		Reference: res.Receipt.Reference, At: provisioning.FrenchDateTime(res.Receipt.At), Deadline: provisioning.FrenchDeadline(res.Receipt.Deadline)}
	d.Title, d.Step = "Opposition enregistrée", "receipt"
	if res.AlreadyOpposed {
		d.Title, d.Step = "Opposition déjà enregistrée", "opposed"
	}
	return d, nil
}

// activate activates the profile now, at the holder's request.
func (h *Handler) activate(ctx context.Context, req Request) (pageData, error) {
	act, err := h.svc.Activate(ctx, req)
	if err != nil {
		return pageData{}, err
	}
	return pageData{Title: "Profil activé", Step: "activated", FirstMasked: act.FirstMasked,
		At: provisioning.FrenchDateTime(act.At)}, nil
}

// undo withdraws the opposition, within the window.
func (h *Handler) undo(ctx context.Context, req Request) (pageData, error) {
	rec, err := h.svc.Undo(ctx, req)
	if err != nil {
		return pageData{}, err
	}
	return pageData{Title: "Opposition annulée", Step: "undone", Reference: rec.Reference}, nil
}

func (h *Handler) receiptPDF(w http.ResponseWriter, r *http.Request) {
	ref, ok := strings.CutSuffix(r.PathValue("ref"), ".pdf")
	if !ok || len(ref) > 32 {
		http.NotFound(w, r)
		return
	}
	// A reference is guessed as a code is: each try counts against the
	// client, a receipt found takes it back.
	keys := []string{"ip:" + h.svc.ClientAddr(r)}
	wait, err := h.svc.Limiter.Reserve(r.Context(), keys...)
	if err != nil {
		h.log.Error("receipt rate limits", "error", err)
		http.Error(w, "Service momentanément indisponible", http.StatusInternalServerError)
		return
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		http.Error(w, "Trop de tentatives. Merci de réessayer plus tard.", http.StatusTooManyRequests)
		return
	}
	rec, err := window.ReceiptByReference(r.Context(), h.svc.Pool, ref)
	if errors.Is(err, provisioning.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	h.svc.settle(r.Context(), keys, err)
	if err != nil {
		h.log.Error("reading receipt", "error", err)
		http.Error(w, "Service momentanément indisponible", http.StatusInternalServerError)
		return
	}
	pdf, err := ReceiptPDF(rec)
	if err != nil {
		h.log.Error("rendering receipt", "error", err)
		http.Error(w, "Service momentanément indisponible", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `attachment; filename="recu-opposition-`+ref+`.pdf"`)
	w.Write(pdf) //nolint:errcheck
}

type apiRequest struct {
	Code      string `json:"code"`
	BirthDate string `json:"birth_date"`
}

type apiResponse struct {
	Status  string          `json:"status"`
	Message string          `json:"message,omitempty"`
	Receipt *window.Receipt `json:"receipt,omitempty"`
}

// decodeJSON reads a request's JSON body into v, strictly (unknown fields
// refused); on failure it answers the client and returns false.
func (h *Handler) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = errors.Join(errBadRequest, err)
		}
		h.apiError(w, err)
		return false
	}
	return true
}

func (h *Handler) apiOppose(w http.ResponseWriter, r *http.Request) {
	var in apiRequest
	if !h.decodeJSON(w, r, &in) {
		return
	}
	res, err := h.svc.Oppose(r.Context(), Request{Code: in.Code, BirthDate: in.BirthDate, Client: h.svc.ClientAddr(r),
		Channel: ChannelAPI, Actor: audit.ActorPublic})
	if err != nil {
		h.apiError(w, err)
		return
	}
	h.writeOpposed(w, res)
}

// writeOpposed answers an API request that recorded (or found) an
// opposition with its receipt.
func (h *Handler) writeOpposed(w http.ResponseWriter, res *window.OpposeResult) {
	out := apiResponse{Status: "opposed", Receipt: res.Receipt}
	if res.AlreadyOpposed {
		out.Status, out.Message = "already_opposed", "Une opposition était déjà enregistrée ; rien n'a changé."
	}
	writeJSON(w, http.StatusOK, out)
}

// apiActivate activates the holder's profile now (code and birth date, as
// for an opposition).
func (h *Handler) apiActivate(w http.ResponseWriter, r *http.Request) {
	var in apiRequest
	if !h.decodeJSON(w, r, &in) {
		return
	}
	act, err := h.svc.Activate(r.Context(), Request{Code: in.Code, BirthDate: in.BirthDate, Client: h.svc.ClientAddr(r),
		Channel: ChannelAPI, Actor: audit.ActorPublic})
	if err != nil {
		h.apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status     string             `json:"status"`
		Activation *window.Activation `json:"activation"`
	}{"activated", act})
}

func (h *Handler) apiError(w http.ResponseWriter, err error) {
	o := outcomeOf(err)
	if o.status >= 500 {
		h.log.Error("opposition API", "error", err)
	}
	var tm *TooManyError
	if errors.As(err, &tm) {
		w.Header().Set("Retry-After", strconv.Itoa(int(tm.RetryAfter.Seconds())+1))
	}
	writeJSON(w, o.status, apiResponse{Status: o.code, Message: o.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}

// ClientAddr is who the rate limits count an attempt against: the
// connection's address, or behind a trusted reverse proxy (ENS_TRUSTED_PROXIES)
// the rightmost address of X-Forwarded-For that is not a trusted proxy — the
// header is ignored from anyone else, who could write anything in it. An
// IPv6 client is keyed on its /64, which one subscriber holds whole.
func (s *Service) ClientAddr(r *http.Request) string {
	addr, ok := s.ClientIP(r)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		return host
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// ClientIP is the client's address: the connection's, or behind a trusted
// reverse proxy the rightmost address of X-Forwarded-For that is not a
// trusted proxy; false when the connection's address does not parse.
func (s *Service) ClientIP(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	if s.trusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a garbled hop: trust nothing further left
			}
			addr = hop
			if !s.trusted(hop) {
				break
			}
		}
	}
	return addr.Unmap(), true
}

func (s *Service) trusted(a netip.Addr) bool {
	for _, p := range s.TrustedProxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}
