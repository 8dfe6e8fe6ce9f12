package ops_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/promtest"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/jobs/ops"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var codeKey, _ = optout.ParseKey(hex.EncodeToString(bytes.Repeat([]byte{7}, 32)))

// area is an ops area on a database holding one launched wave of 100.
type area struct {
	t       testing.TB
	pool    *pgxpool.Pool
	srv     *httptest.Server
	handler *ops.Handler
}

func newArea(t testing.TB, configure func(*ops.Options)) *area {
	t.Helper()
	pool := testdb.Pool(t)
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: 100, Seed: 1, RejectShare: -1})
	testdb.Launch(t, pool, provisioning.WaveSpec{Name: "w", Actor: "a"})
	hash := func(p string) string {
		h, _ := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		return string(h)
	}
	users, err := ops.ParseUsers(strings.NewReader("# users\nolga:operator:" + hash("o-pass") + "\nadam:auditor:" + hash("a-pass") +
		"\nalice:agent:" + hash("c-pass") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	client, _ := jobs.NewInsertClient(pool)
	log := slog.New(slog.DiscardHandler)
	o := ops.Options{Pool: pool, Client: client, Users: users, Log: log,
		Service: &optout.Service{Pool: pool, Key: codeKey, Limiter: optout.NewLimiter(pool), AuditKey: testdb.AuditKey, Log: log}}
	if configure != nil {
		configure(&o)
	}
	h, err := ops.NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a := &area{t: t, pool: pool, srv: httptest.NewServer(h), handler: h}
	t.Cleanup(a.srv.Close)
	return a
}

// do sends a request as user (none when empty); header adds headers.
func (a *area) do(method, path, user, pass, body string, header ...string) (int, string, http.Header) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestEachRoleSeesOnlyWhatItMay(t *testing.T) {
	t.Parallel()
	a := newArea(t, nil)
	tests := []struct {
		name, method, path, user, pass string
		want                           int
	}{
		{"nobody", "GET", "/ops/", "", "", 401},
		{"wrong password", "GET", "/ops/", "olga", "nope", 401},
		{"unknown user", "GET", "/ops/", "eve", "o-pass", 401},
		{"auditor index", "GET", "/ops/", "adam", "a-pass", 200},
		{"auditor report pdf", "GET", "/ops/reports/w?format=pdf", "adam", "a-pass", 200},
		{"auditor river UI", "GET", "/ops/river/", "adam", "a-pass", 403},
		{"auditor writes", "POST", "/ops/river/api/jobs/cancel", "adam", "a-pass", 403},
		{"auditor agents' API", "POST", "/ops/api/v1/oppositions", "adam", "a-pass", 403},
		{"operator river UI", "GET", "/ops/river/", "olga", "o-pass", 200},
		{"operator report", "GET", "/ops/reports/w", "olga", "o-pass", 200},
		{"agent index", "GET", "/ops/", "alice", "c-pass", 403},
		{"agent river UI", "GET", "/ops/river/", "alice", "c-pass", 403},
		{"agent metrics", "GET", "/metrics", "alice", "c-pass", 403},
		{"metrics without sign-in", "GET", "/metrics", "", "", 401},
		{"metrics as auditor", "GET", "/metrics", "adam", "a-pass", 200},
	}
	for _, tt := range tests {
		if got, body, _ := a.do(tt.method, tt.path, tt.user, tt.pass, ""); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d\n%.200s", tt.name, tt.method, tt.path, got, tt.want, body)
		}
	}
	_, body, _ := a.do("GET", "/metrics", "adam", "a-pass", "")
	if !strings.Contains(body, `ens_accounts{state="pending"}`) || !strings.Contains(body, "ens_import_rows_total") || !strings.Contains(body, `ens_letter_batches{state="overdue"}`) ||
		!strings.Contains(body, `ens_activations_withheld{reason="letter_not_posted"}`) || !strings.Contains(body, "ens_platform_feed_lag") {
		t.Fatalf("metrics:\n%s", body)
	}
	promtest.Lint(t, body)
}

// A page an operator visits cannot drive River UI with the browser's
// cached credentials, nor frame the ops area. Before, a text/plain POST
// from another site cancelled the notice chunk: those people were never
// told, and nothing was audited.
func TestRiverUICannotBeDrivenFromAnotherSite(t *testing.T) {
	t.Parallel()
	a := newArea(t, nil)
	ctx := context.Background()
	var jobID int64
	if err := a.pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts, scheduled_at)
		VALUES ('notify_chunk', '{}', 'notices', 'scheduled', 25, now() + interval '1 hour') RETURNING id`).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	body := `{"ids":["` + itoa(jobID) + `"]}`
	st, _, hdr := a.do("POST", "/ops/river/api/jobs/cancel", "olga", "o-pass", body,
		"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	if st != http.StatusForbidden {
		t.Errorf("cross-site cancel: %d, want 403", st)
	}
	if got := hdr.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q, want frame-ancestors 'none'", got)
	}
	var state string
	a.pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, jobID).Scan(&state) //nolint:errcheck
	if state != "scheduled" {
		t.Fatalf("the notice chunk is %s after a cross-site request", state)
	}
	// The operator's own cancel, from the ops area itself, is done and
	// audited with their name and the job it touched.
	st, out, _ := a.do("POST", "/ops/river/api/jobs/cancel", "olga", "o-pass", body,
		"Content-Type", "application/json", "Sec-Fetch-Site", "same-origin")
	if st != http.StatusOK {
		t.Fatalf("same-origin cancel: %d %s", st, out)
	}
	var actor, details string
	if err := a.pool.QueryRow(ctx, `SELECT actor, details::text FROM audit_event WHERE action = 'ops.river_ui'`).Scan(&actor, &details); err != nil {
		t.Fatalf("no audit event for the River UI cancel: %v", err)
	}
	if actor != "olga" || !strings.Contains(details, itoa(jobID)) || !strings.Contains(details, `"notify_chunk":1`) || !strings.Contains(details, "jobs/cancel") {
		t.Fatalf("audit event: actor %s, details %s", actor, details)
	}
}

// A River UI action names its jobs as River reads them — "02" and "+3" are
// jobs 2 and 3 — and the audit event records both (before: no job id nor
// kind, River deleting them all the same); an id nobody can read is refused.
func TestRiverUIActionsAreAuditedWithTheirJobs(t *testing.T) {
	t.Parallel()
	a := newArea(t, nil)
	ctx := context.Background()
	var ids [3]int64
	for i := range ids {
		if err := a.pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts, scheduled_at)
			VALUES ('notify_chunk', '{}', 'notices', 'scheduled', 25, now() + interval '1 hour') RETURNING id`).Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	body := fmt.Sprintf(`{"ids":["0%d","+%d"]}`, ids[1], ids[2])
	st, out, _ := a.do("POST", "/ops/river/api/jobs/delete", "olga", "o-pass", body, "Content-Type", "application/json", "Sec-Fetch-Site", "same-origin")
	if st != http.StatusOK {
		t.Fatalf("delete: %d %s", st, out)
	}
	var details string
	if err := a.pool.QueryRow(ctx, `SELECT details::text FROM audit_event WHERE action = 'ops.river_ui'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`[%d,%d]`, ids[1], ids[2]); !strings.Contains(details, want) || !strings.Contains(details, `"notify_chunk":2`) {
		t.Fatalf("audit event of a delete of %s: %s; want the job ids %s and their kinds", body, details, want)
	}
	if st, _, _ := a.do("POST", "/ops/river/api/jobs/delete", "olga", "o-pass", `{"ids":["0x1"]}`, "Content-Type", "application/json",
		"Sec-Fetch-Site", "same-origin"); st != http.StatusBadRequest {
		t.Fatalf("an id nobody can read: %d, want 400", st)
	}
	var left int
	a.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id = $1`, ids[0]).Scan(&left) //nolint:errcheck
	if left != 1 {
		t.Fatal("a job the request did not name was deleted")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Failed sign-ins from one address meet growing delays (before: unlimited
// guesses at bcrypt's pace); a request without credentials costs no bcrypt.
func TestSignInsAreThrottledAndCheapWithoutCredentials(t *testing.T) {
	t.Parallel()
	a := newArea(t, nil)
	for i := range 6 {
		if st, _, _ := a.do("GET", "/ops/", "olga", "guess", ""); st != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i+1, st)
		}
	}
	st, _, hdr := a.do("GET", "/ops/", "olga", "o-pass", "")
	if st != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("after 6 wrong passwords: %d (Retry-After %q), want 429", st, hdr.Get("Retry-After"))
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.DefaultCost)
	start := time.Now()
	bcrypt.CompareHashAndPassword(h, []byte("y")) //nolint:errcheck
	oneBcrypt := time.Since(start)
	start = time.Now()
	for range 20 {
		if st, _, _ := a.do("GET", "/ops/", "", "", ""); st != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d", st)
		}
	}
	if took := time.Since(start); took > 5*oneBcrypt {
		t.Fatalf("20 requests without credentials took %v; one bcrypt takes %v: bcrypt runs without a password", took, oneBcrypt)
	}
}

// /metrics is cached and runs on its own pool: a flood of scrapes costs one
// gathering every few seconds and never takes the form's connections
// (before: every scrape counted the largest tables on the form's pool). An
// allow-listed scraper needs no password.
func TestMetricsOnTheirOwnPoolAndCached(t *testing.T) {
	t.Parallel()
	var metricsPool *pgxpool.Pool
	a := newArea(t, func(o *ops.Options) {
		metricsPool = testdb.OwnerPool(t, o.Pool) // any other pool on the same database
		o.MetricsPool = metricsPool
		o.MetricsAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.pool.Exec(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts) VALUES ('notify_chunk', '{}', 'notices', 'available', 25)`); err != nil {
		t.Fatal(err)
	}
	var held []*pgxpool.Conn
	for range a.pool.Config().MaxConns {
		c, err := a.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	release := func() {
		for _, c := range held {
			c.Release()
		}
		held = nil
	}
	t.Cleanup(release) // before the server closes, should the scrape hang
	st, first, _ := a.do("GET", "/metrics", "", "", "")
	if st != http.StatusOK || !strings.Contains(first, "ens_accounts") {
		t.Fatalf("metrics with the form's pool exhausted: %d\n%.300s", st, first)
	}
	release()
	if _, err := a.pool.Exec(ctx, `DELETE FROM river_job`); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := a.do("GET", "/metrics", "", "", ""); metricLine(again, "ens_river_jobs{") != metricLine(first, "ens_river_jobs{") || metricLine(first, "ens_river_jobs{") == "" {
		t.Fatalf("a scrape within seconds of another gathered again:\n%s\n%s", metricLine(first, "ens_river_jobs{"), metricLine(again, "ens_river_jobs{"))
	}
}

func metricLine(body, prefix string) string {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// A call-centre agent records an opposition through the agents' API on the
// ops listener, signed in under their own name, which the opposition and
// the audit log carry (before: the public API, recorded as "api" with no
// agent).
func TestAgentAPIRecordsTheAgentsName(t *testing.T) {
	t.Parallel()
	a := newArea(t, nil)
	ctx := context.Background()
	var id int64
	var birth string
	if err := a.pool.QueryRow(ctx, `SELECT a.id, p.birth_date::text FROM account a JOIN person p ON p.id = a.person_id ORDER BY a.id LIMIT 1`).Scan(&id, &birth); err != nil {
		t.Fatal(err)
	}
	code := codeKey.Derive(id)
	if _, err := a.pool.Exec(ctx, `UPDATE account SET state = 'notified', notified_at = now(), deadline = now() + interval '10 days', code_hash = $2 WHERE id = $1`,
		id, codeKey.LookupHash(code)); err != nil {
		t.Fatal(err)
	}
	st, out, _ := a.do("POST", "/ops/api/v1/oppositions", "alice", "c-pass", `{"code":"`+code.String()+`","birth_date":"`+birth+`"}`,
		"Content-Type", "application/json")
	if st != http.StatusOK || !strings.Contains(out, `"opposed"`) {
		t.Fatalf("agent opposition: %d %s", st, out)
	}
	var actor, details string
	if err := a.pool.QueryRow(ctx, `SELECT actor, details::text FROM audit_event WHERE action = 'account.opposed'`).Scan(&actor, &details); err != nil {
		t.Fatalf("audit of the agent's opposition: %v", err)
	}
	if actor != "alice" || !strings.Contains(details, `"agent"`) {
		t.Fatalf("the opposition is audited as %q %s, want the agent alice on channel agent", actor, details)
	}
	if st, out, _ := a.do("POST", "/ops/api/v1/oppositions", "alice", "c-pass", `{"nir":"not a nir","birth_date":"`+birth+`"}`); st != http.StatusBadRequest {
		t.Fatalf("NIR without identity check: %d %s", st, out)
	}
}

// Behind a trusted reverse proxy, ENS_METRICS_ALLOW applies to the client
// the proxy reports, not to the proxy itself: allowing the proxy's network
// never opens /metrics to everyone behind it (before: anyone through the
// proxy scraped without a password).
func TestMetricsAllowListAppliesToTheRealClient(t *testing.T) {
	t.Parallel()
	a := newArea(t, func(o *ops.Options) {
		o.MetricsAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Service.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	if st, _, _ := a.do("GET", "/metrics", "", "", "", "X-Forwarded-For", "203.0.113.9"); st != http.StatusUnauthorized {
		t.Fatalf("a client on the internet through the trusted proxy: %d, want 401", st)
	}
	if st, _, _ := a.do("GET", "/metrics", "", "", "", "X-Forwarded-For", "127.0.0.9"); st != http.StatusOK {
		t.Fatalf("an allowed scraper through the proxy: %d, want 200", st)
	}
}

// Wrong passwords for one user name are limited whatever address they come
// from: an attacker rotating forwarded addresses meets the user's limit
// (before: each new address started afresh, and every try ran bcrypt).
func TestOpsSignInLimitedPerUserName(t *testing.T) {
	t.Parallel()
	a := newArea(t, func(o *ops.Options) {
		o.Service.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	limited := false
	for i := range 12 {
		st, _, _ := a.do("GET", "/ops/", "olga", "wrong", "", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		if st == http.StatusTooManyRequests {
			limited = true
			break
		}
		if st != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, st)
		}
	}
	if !limited {
		t.Fatal("twelve wrong passwords for olga from twelve addresses, never limited")
	}
	// Another user is not locked out by olga's attacker.
	if st, _, _ := a.do("GET", "/ops/", "adam", "a-pass", "", "X-Forwarded-For", "198.51.100.200"); st != http.StatusOK {
		t.Fatalf("another user signing in: %d", st)
	}
}
