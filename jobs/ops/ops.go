// Package ops is the operators' and auditors' web area, served apart from the
// public form on an internal listener: River UI (operators only, every action
// audited), wave reports as HTML with CSV and PDF downloads (operators and
// auditors), the call-centre agents' API, and /metrics for Prometheus.
//
// Users and bcrypt-hashed passwords come from configuration; an auditor can
// read everything here and change nothing; an agent can only record
// oppositions. Pages show counts, never personal data. Every route refuses
// cross-site writes and framing.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/feed"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/reconcile"
	"github.com/ens-sante/ens/provisioning/report"
	"github.com/ens-sante/ens/provisioning/wave"
)

// Options configure the ops area.
type Options struct {
	Pool   *pgxpool.Pool // pages and the audit log
	Client *river.Client[pgx.Tx]
	Users  map[string]User
	Log    *slog.Logger
	// Service records the call-centre agents' oppositions; its limiter also
	// throttles failed sign-ins, and its trusted proxies name the client.
	Service *optout.Service
	// MetricsPool is /metrics' own small pool, so that scrapes never take
	// a connection the public form needs (nil: Pool).
	MetricsPool *pgxpool.Pool
	// MetricsAllow lists the networks that may scrape /metrics without
	// signing in (ENS_METRICS_ALLOW); anyone else signs in as an auditor.
	MetricsAllow []netip.Prefix
	// PostingSLA flags unacknowledged letter batches as overdue in /metrics
	// (zero: provisioning.DefaultPostingSLA).
	PostingSLA time.Duration
	// Collectors are exported on /metrics beside the database's figures:
	// the public site's own measures when this process serves it.
	Collectors []prometheus.Collector
}

// Handler serves /ops/, the agents' API under /ops/api/v1/ and /metrics.
type Handler struct {
	pool    *pgxpool.Pool
	users   map[string]User
	log     *slog.Logger
	limiter *optout.Limiter
	svc     *optout.Service
	allow   []netip.Prefix
	handler http.Handler
	river   *riverui.Handler
	signIns *signInCache
}

// NewHandler builds the ops area. Start must be called before serving.
func NewHandler(o Options) (*Handler, error) {
	if o.PostingSLA <= 0 {
		o.PostingSLA = notice.DefaultPostingSLA
	}
	if o.MetricsPool == nil {
		o.MetricsPool = o.Pool
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(o.Client, nil), Logger: o.Log, Prefix: "/ops/river",
		JobListHideArgsByDefault: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating River UI: %w", err)
	}
	h := &Handler{pool: o.Pool, users: o.Users, log: o.Log, limiter: o.Service.Limiter, svc: o.Service,
		allow: o.MetricsAllow, river: ui, signIns: newSignInCache()}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{pool: o.MetricsPool, log: o.Log, sla: o.PostingSLA})
	reg.MustRegister(o.Collectors...)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h.metricsAccess(promhttp.HandlerFor(newCachedGatherer(reg, metricsTTL), promhttp.HandlerOpts{})))
	mux.Handle("/ops/river/", h.auth(RoleOperator, h.auditRiverUI(ui)))
	mux.Handle("GET /ops/{$}", h.auth(RoleAuditor, http.HandlerFunc(h.index)))
	mux.Handle("GET /ops/reports/{wave}", h.auth(RoleAuditor, http.HandlerFunc(h.report)))
	mux.Handle("GET /ops/api/v1/changes", h.auth(RolePlatform, http.HandlerFunc(h.changes)))
	mux.Handle("POST /ops/api/v1/oppositions", h.auth(RoleAgent,
		optout.NewAgentHandler(o.Service, func(r *http.Request) string { return userOf(r).Name })))
	// Every state-changing request from another site is refused, whatever
	// its content type: a page an operator visits cannot drive River UI
	// with the browser's cached credentials.
	h.handler = http.NewCrossOriginProtection().Handler(mux)
	return h, nil
}

// Start starts River UI's background work.
func (h *Handler) Start(ctx context.Context) error { return h.river.Start(ctx) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	h.handler.ServeHTTP(w, r)
}

// clientAddr is the client's address as the rate limits key it.
func (h *Handler) clientAddr(r *http.Request) string { return h.svc.ClientAddr(r) }

var indexTmpl = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ens — operations</title>
<style>body{font-family:sans-serif;max-width:60rem;margin:1rem auto}table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ccc;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>ens — operations</h1>
<p>Signed in as {{.User.Name}} ({{.User.Role}}).{{if eq .User.Role "operator"}} <a href="/ops/river/">River UI</a>{{end}}</p>
<table><tr><th>Wave</th><th>Window</th><th>Created</th><th>Notified</th><th>Opposed</th><th>Active</th><th>Reports</th></tr>
{{range .Reports}}<tr><td><a href="/ops/reports/{{.Wave.Name}}">{{.Wave.Name}}</a></td><td>{{.Wave.Window}}</td><td>{{.Wave.Created}}</td>
<td>{{index .Accounts "notified"}}</td><td>{{index .Accounts "opposed"}}</td><td>{{index .Accounts "active"}}</td>
<td><a href="/ops/reports/{{.Wave.Name}}?format=csv">CSV</a> <a href="/ops/reports/{{.Wave.Name}}?format=pdf">PDF</a></td></tr>
{{end}}</table></body></html>`))

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	waves, err := provisioning.ListWaves(r.Context(), h.pool)
	if err != nil {
		h.fail(w, err)
		return
	}
	var reports []*wave.Report
	for _, wv := range waves {
		rep, err := wave.BuildReport(r.Context(), h.pool, wv.Name, wave.StatusOptions{AuditKey: h.svc.AuditKey, AuditPreviousKeys: h.svc.AuditPreviousKeys})
		if err != nil {
			h.fail(w, err)
			return
		}
		reports = append(reports, rep)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	indexTmpl.Execute(w, map[string]any{"User": userOf(r), "Reports": reports}) //nolint:errcheck
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	rep, err := reconcile.WaveReport(r.Context(), h.pool, r.PathValue("wave"), wave.StatusOptions{AuditKey: h.svc.AuditKey, AuditPreviousKeys: h.svc.AuditPreviousKeys})
	if errors.Is(err, provisioning.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	switch format := r.URL.Query().Get("format"); format {
	case "csv", "pdf", "json":
		types := map[string]string{"csv": "text/csv; charset=utf-8", "pdf": "application/pdf", "json": "application/json"}
		w.Header().Set("Content-Type", types[format])
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="report-%s.%s"`, rep.Wave.Name, format))
		report.Write(w, rep, format) //nolint:errcheck
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Report %s</title></head><body>
<p><a href="/ops/">← waves</a> · <a href="?format=csv">CSV</a> · <a href="?format=pdf">PDF</a></p><pre>`, template.HTMLEscapeString(rep.Wave.Name))
		var sb strings.Builder
		report.Text(&sb, rep) //nolint:errcheck
		fmt.Fprint(w, template.HTMLEscapeString(sb.String()), "</pre></body></html>")
	}
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	h.log.Error("ops page", "error", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// changes serves the change feed after ?after=SEQ (and at most ?limit=N),
// one JSON object a line, as ens changes prints it: to the platform and to
// operators.
func (h *Handler) changes(w http.ResponseWriter, r *http.Request) {
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit := 1000
	if l := r.URL.Query().Get("limit"); l != "" {
		limit, err = strconv.Atoi(l)
		if limit <= 0 || limit > feed.MaxLimit {
			err = errors.New("limit out of range")
		}
	}
	if err != nil || after < 0 {
		http.Error(w, "after=SEQ (0: from the start) and limit=N (1–10000) expected", http.StatusBadRequest)
		return
	}
	changes, err := feed.After(r.Context(), h.pool, after, limit)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, c := range changes {
		if err := enc.Encode(c); err != nil {
			return
		}
	}
}
