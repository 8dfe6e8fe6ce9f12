// Package ops is the operators' and auditors' web area, served apart from the
// public form: River UI (operators only), wave reports as HTML with CSV and
// PDF downloads (operators and auditors), and /metrics for Prometheus.
//
// Users and bcrypt-hashed passwords come from configuration; an auditor can
// read everything here and change nothing. Pages show counts, never personal
// data.
package ops

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"golang.org/x/crypto/bcrypt"
	"riverqueue.com/riverui"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/reconcile"
	"github.com/ens-sante/ens/provisioning/report"
)

// Role of an ops user.
type Role string

// The roles.
const (
	RoleOperator Role = "operator"
	RoleAuditor  Role = "auditor"
)

// User is one account of the ops area.
type User struct {
	Name string
	Role Role
	Hash []byte // bcrypt
}

// ParseUsers reads "name:role:bcrypt-hash" lines (blank lines and # comments
// ignored), from ENS_OPS_USERS_FILE or ENS_OPS_USERS (comma-separated).
func ParseUsers(r io.Reader) (map[string]User, error) {
	users := map[string]User{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		for _, entry := range strings.Split(sc.Text(), ",") {
			line := strings.TrimSpace(entry)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || (Role(parts[1]) != RoleOperator && Role(parts[1]) != RoleAuditor) || !strings.HasPrefix(parts[2], "$2") {
				return nil, fmt.Errorf("ops users line %d: expected name:operator|auditor:bcrypt-hash", n)
			}
			users[parts[0]] = User{Name: parts[0], Role: Role(parts[1]), Hash: []byte(parts[2])}
		}
	}
	return users, sc.Err()
}

// LoadUsers reads the users from the environment.
func LoadUsers() (map[string]User, error) {
	if p := os.Getenv("ENS_OPS_USERS_FILE"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("reading ENS_OPS_USERS_FILE: %w", err)
		}
		defer f.Close()
		return ParseUsers(f)
	}
	if v := os.Getenv("ENS_OPS_USERS"); v != "" {
		return ParseUsers(strings.NewReader(v))
	}
	return nil, errors.New("no ops users: set ENS_OPS_USERS_FILE or ENS_OPS_USERS (name:role:bcrypt-hash; see ens ops hash)")
}

type ctxKey struct{}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)

// Handler serves /ops/ and /metrics.
type Handler struct {
	pool  *pgxpool.Pool
	users map[string]User
	log   *slog.Logger
	mux   *http.ServeMux
	river *riverui.Handler
}

// NewHandler builds the ops area. Start must be called before serving.
// postingSLA flags unacknowledged letter batches as overdue in /metrics
// (zero: provisioning.DefaultPostingSLA).
func NewHandler(pool *pgxpool.Pool, client *river.Client[pgx.Tx], users map[string]User, log *slog.Logger, postingSLA time.Duration) (*Handler, error) {
	if postingSLA <= 0 {
		postingSLA = provisioning.DefaultPostingSLA
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil), Logger: log, Prefix: "/ops/river",
		JobListHideArgsByDefault: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating River UI: %w", err)
	}
	h := &Handler{pool: pool, users: users, log: log, mux: http.NewServeMux(), river: ui}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{pool: pool, log: log, sla: postingSLA})
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	h.mux.Handle("/ops/river/", h.auth(RoleOperator, ui))
	h.mux.Handle("GET /ops/{$}", h.auth(RoleAuditor, http.HandlerFunc(h.index)))
	h.mux.Handle("GET /ops/reports/{wave}", h.auth(RoleAuditor, http.HandlerFunc(h.report)))
	return h, nil
}

// Start starts River UI's background work.
func (h *Handler) Start(ctx context.Context) error { return h.river.Start(ctx) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// auth requires a user with at least role: operators pass everywhere,
// auditors only where RoleAuditor suffices — and only to read.
func (h *Handler) auth(need Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, pass, ok := r.BasicAuth()
		u, known := h.users[name]
		if !ok || !known || bcrypt.CompareHashAndPassword(u.Hash, []byte(pass)) != nil {
			if !known { // spend the same time whether the user exists
				bcrypt.CompareHashAndPassword(dummyHash, []byte(pass)) //nolint:errcheck
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="ens ops", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if need == RoleOperator && u.Role != RoleOperator {
			http.Error(w, "operators only", http.StatusForbidden)
			return
		}
		if u.Role == RoleAuditor && r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "auditors read only", http.StatusForbidden)
			return
		}
		h.log.Info("ops access", "user", u.Name, "role", u.Role, "method", r.Method, "path", r.URL.Path)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, u)))
	})
}

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
	var reports []*provisioning.WaveReport
	for _, wv := range waves {
		rep, err := provisioning.BuildWaveReport(r.Context(), h.pool, wv.Name, provisioning.StatusOptions{})
		if err != nil {
			h.fail(w, err)
			return
		}
		reports = append(reports, rep)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	indexTmpl.Execute(w, map[string]any{"User": r.Context().Value(ctxKey{}), "Reports": reports}) //nolint:errcheck
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	rep, err := reconcile.WaveReport(r.Context(), h.pool, r.PathValue("wave"), provisioning.StatusOptions{})
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
