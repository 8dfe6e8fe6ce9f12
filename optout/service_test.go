package optout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/promtest"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/archive"
	"github.com/ens-sante/ens/provisioning/wave"
	"github.com/ens-sante/ens/provisioning/window"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// holder is a notified account as its owner knows it.
type holder struct {
	id    int64
	birth string
	code  optout.Code
}

// notified imports n people, launches a wave and marks its pending accounts
// notified with deadline, as the notice workers would.
func notified(t testing.TB, pool *pgxpool.Pool, n int64, deadline time.Time) []holder {
	t.Helper()
	ctx := context.Background()
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: n, Seed: 9, RejectShare: -1})
	testdb.Launch(t, pool, provisioning.WaveSpec{Name: "w", Actor: "t"})
	rows, _ := pool.Query(ctx, `SELECT a.id, p.birth_date::text FROM account a JOIN person p ON p.id = a.person_id WHERE a.state = 'pending' ORDER BY a.id`)
	var hs []holder
	for rows.Next() {
		var h holder
		rows.Scan(&h.id, &h.birth)
		h.code = key.Derive(h.id)
		hs = append(hs, h)
	}
	rows.Close()
	for _, h := range hs {
		if _, err := pool.Exec(ctx, `UPDATE account SET state = 'notified', notified_at = now() - interval '1 day', deadline = $2, code_hash = $3 WHERE id = $1`,
			h.id, deadline, key.LookupHash(h.code)); err != nil {
			t.Fatal(err)
		}
	}
	return hs
}

func newService(pool *pgxpool.Pool) *optout.Service {
	pow := optout.NewProofOfWork(key)
	pow.Prefix = "0" // 16 tries on average: the tests solve them under the race detector
	return &optout.Service{Pool: pool, Key: key, Limiter: optout.NewLimiter(pool), AuditKey: testdb.AuditKey, Log: slog.New(slog.DiscardHandler),
		ProofOfWork: pow}
}

func post(t *testing.T, srv *httptest.Server, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/api/v1/oppositions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out, resp.Header
}

// serveNotified serves the public site over a database holding n people
// notified with deadline.
func serveNotified(t *testing.T, n int64, deadline time.Time) (*httptest.Server, *pgxpool.Pool, []holder) {
	t.Helper()
	pool := testdb.Pool(t)
	hs := notified(t, pool, n, deadline)
	srv := httptest.NewServer(optout.NewHandler(newService(pool)))
	t.Cleanup(srv.Close)
	return srv, pool, hs
}

func TestAPIContract(t *testing.T) {
	t.Parallel()
	srv, _, hs := serveNotified(t, 40, time.Now().Add(24*time.Hour))
	h := hs[0]
	body := func(code, birth string) string { return `{"code":"` + code + `","birth_date":"` + birth + `"}` }

	if st, out, _ := post(t, srv, body(strings.ToLower(string(h.code)), h.birth)); st != 200 || out["status"] != "opposed" || out["receipt"] == nil {
		t.Fatalf("right pair: %d %v", st, out)
	}
	if st, out, _ := post(t, srv, body(h.code.String(), h.birth)); st != 200 || out["status"] != "already_opposed" {
		t.Fatalf("opposing twice: %d %v", st, out)
	}
	// Wrong birth date and unknown code: the same answer.
	st1, out1, _ := post(t, srv, body(hs[1].code.String(), "1900-01-01"))
	st2, out2, _ := post(t, srv, body(key.Derive(999_999).String(), hs[1].birth))
	if st1 != st2 || out1["status"] != out2["status"] || out1["message"] != out2["message"] || st1/100 != 4 {
		t.Fatalf("wrong pair answers differ: %d %v / %d %v", st1, out1, st2, out2)
	}
	typo := []byte(hs[2].code)
	typo[3] = map[bool]byte{true: 'A', false: 'B'}[typo[3] != 'A']
	if st, out, _ := post(t, srv, body(string(typo), hs[2].birth)); st != 422 || out["status"] != "mistyped" {
		t.Fatalf("typo: %d %v", st, out)
	}
	for _, bad := range []string{`{`, `[]`, `{"code":1}`, `{"code":"x","birth_date":"y","extra":1}`, strings.Repeat("a", 10000)} {
		if st, _, _ := post(t, srv, bad); st/100 != 4 {
			t.Errorf("malformed body %.20q: status %d, want 4xx", bad, st)
		}
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

func TestWindowClosedAndRateLimit(t *testing.T) {
	t.Parallel()
	srv, _, hs := serveNotified(t, 20, time.Now().Add(-time.Minute))
	st, out, _ := post(t, srv, `{"code":"`+hs[0].code.String()+`","birth_date":"`+hs[0].birth+`"}`)
	if st != 410 || out["status"] != "window_closed" {
		t.Fatalf("after the deadline: %d %v", st, out)
	}
	// Guessing slows down, without locking anyone out for good.
	var last int
	var hdr http.Header
	for i := 0; i < 8; i++ {
		last, _, hdr = post(t, srv, `{"code":"`+key.Derive(int64(500_000+i)).String()+`","birth_date":"1970-01-01"}`)
	}
	if last != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("after 8 wrong guesses: %d, Retry-After %q", last, hdr.Get("Retry-After"))
	}
}

func TestFormTwoStepsReceiptAndUndo(t *testing.T) {
	t.Parallel()
	srv, pool, hs := serveNotified(t, 20, time.Now().Add(48*time.Hour))
	h := hs[0]
	form := url.Values{"code": {h.code.String()}, "birth_date": {h.birth[8:10] + "/" + h.birth[5:7] + "/" + h.birth[:4]}}
	page := func(path string) (int, string) {
		resp, err := http.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("no CSP on %s", path)
		}
		return resp.StatusCode, string(b)
	}
	st, body := page("/verifier")
	if st != 200 || !strings.Contains(body, "Confirmez votre opposition") || !strings.Contains(body, "**") {
		t.Fatalf("step one: %d\n%s", st, body)
	}
	var state string
	pool.QueryRow(context.Background(), `SELECT state FROM account WHERE id = $1`, h.id).Scan(&state)
	if state != "notified" {
		t.Fatalf("step one alone changed the account to %s", state)
	}
	st, body = page("/confirmer")
	if st != 200 || !strings.Contains(body, "Opposition enregistrée") {
		t.Fatalf("step two: %d\n%s", st, body)
	}
	i := strings.Index(body, "OPP-")
	ref := body[i : i+15]
	resp, err := http.Get(srv.URL + "/recu/" + ref + ".pdf")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("receipt PDF: %v %v", resp.StatusCode, err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command("pdftotext", "-", "-")
	cmd.Stdin = strings.NewReader(string(pdf))
	text, err := cmd.Output()
	if err != nil || !strings.Contains(string(text), ref) || !strings.Contains(string(text), "Reçu d'opposition") {
		t.Fatalf("receipt text: %v\n%s", err, text)
	}
	st, body = page("/annuler")
	pool.QueryRow(context.Background(), `SELECT state FROM account WHERE id = $1`, h.id).Scan(&state)
	if st != 200 || state != "notified" || !strings.Contains(body, "annulée") {
		t.Fatalf("undo: %d, state %s", st, state)
	}
	// A cross-site form post is refused (CSRF).
	req, _ := http.NewRequest("POST", srv.URL+"/confirmer", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d, want 403", resp.StatusCode)
	}
}

func TestOppositionRacingTheClosingHasOneWinner(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	deadline := time.Now().Add(time.Hour)
	hs := notified(t, pool, 250, deadline)
	// The opposition sees the window open, the sweep sees it ended: both
	// are eligible, and only the database's row lock decides.
	svc := newService(pool)
	svc.Limiter = optout.NewLimiter(pool)
	svc.Limiter.FreeFailures = 1 << 20
	svc.Clock = func() time.Time { return deadline.Add(-time.Second) }
	after := provisioning.Clock(func() time.Time { return deadline.Add(time.Second) })
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answeredOpposed := map[int64]bool{}
	for i, h := range hs {
		wg.Go(func() {
			res, err := svc.Oppose(ctx, optout.Request{Code: h.code.String(), BirthDate: h.birth, Client: "c", Channel: optout.ChannelAPI, Actor: "public"})
			if err == nil && !res.AlreadyOpposed {
				mu.Lock()
				answeredOpposed[h.id] = true
				mu.Unlock()
			}
		})
		if i%25 == 0 {
			wg.Go(func() {
				if _, err := window.Close(ctx, testdb.Store(pool).At(after), 0, 10); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	window.Close(ctx, testdb.Store(pool).At(after), 0, 0)
	rows, _ := pool.Query(ctx, `SELECT a.id, a.state, EXISTS (SELECT 1 FROM opposition o WHERE o.account_id = a.id AND o.undone_at IS NULL)
		FROM account a WHERE a.state IN ('opposed', 'active', 'notified')`)
	defer rows.Close()
	opposed, active := 0, 0
	for rows.Next() {
		var id int64
		var state string
		var hasOpp bool
		rows.Scan(&id, &state, &hasOpp)
		switch {
		case state == "active" && (hasOpp || answeredOpposed[id]):
			t.Fatalf("account %d is active but its opposition was recorded", id)
		case state == "opposed" && !hasOpp:
			t.Fatalf("account %d opposed without a receipt", id)
		case state == "notified":
			t.Fatalf("account %d left notified after its window", id)
		}
		switch state {
		case "opposed":
			opposed++
		case "active":
			active++
		}
	}
	t.Logf("%d opposed, %d activated", opposed, active)
	if opposed != len(answeredOpposed) {
		t.Fatalf("%d answered opposed, %d opposed", len(answeredOpposed), opposed)
	}
}

func FuzzAPI(f *testing.F) {
	for _, s := range []string{`{"code":"ABCD-EFGH-JKMN","birth_date":"1984-03-15"}`, `{}`, `{"code":null}`, `"x"`, "\xff", `{"birth_date":"31/02/1984","code":"0000-0000-0000"}`} {
		f.Add(s)
	}
	pool := testdb.Pool(f)
	h := optout.NewHandler(newService(pool))
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/api/v1/oppositions", "/verifier", "/confirmer", "/annuler"} {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			if path == "/api/v1/oppositions" {
				req.Header.Set("Content-Type", "application/json")
			} else {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s with %q: %d", path, body, rec.Code)
			}
		}
	})
}

// After the window, an opposed person is told the same thing by the form
// and the API: their opposition stands. Reinstating the account (an
// operator's act) withdraws it: the receipt then reads as withdrawn, and
// the report counts no standing opposition. (Before: the form said "le
// délai est terminé… vous pouvez fermer le profil" while the API answered
// already_opposed, and a reinstated account kept a standing opposition.)
func TestOpposedAccountAnsweredAlikeAndReinstatementWithdraws(t *testing.T) {
	t.Parallel()
	srv, pool, hs := serveNotified(t, 20, time.Now().Add(48*time.Hour))
	h := hs[0]
	ctx := context.Background()
	st, out, _ := post(t, srv, `{"code":"`+h.code.String()+`","birth_date":"`+h.birth+`"}`)
	if st != 200 || out["status"] != "opposed" {
		t.Fatalf("opposing: %d %v", st, out)
	}
	ref := out["receipt"].(map[string]any)["reference"].(string)
	// The window closes.
	if _, err := pool.Exec(ctx, `UPDATE account SET deadline = now() - interval '1 hour', notified_at = now() - interval '2 days' WHERE id = $1`, h.id); err != nil {
		t.Fatal(err)
	}
	if st, out, _ := post(t, srv, `{"code":"`+h.code.String()+`","birth_date":"`+h.birth+`"}`); st != 200 || out["status"] != "already_opposed" {
		t.Fatalf("API after the window: %d %v", st, out)
	}
	resp, err := http.PostForm(srv.URL+"/verifier", url.Values{"code": {h.code.String()}, "birth_date": {h.birth[8:10] + "/" + h.birth[5:7] + "/" + h.birth[:4]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Opposition déjà enregistrée") || strings.Contains(string(body), "fermer le profil") {
		t.Fatalf("form after the window: %d\n%s", resp.StatusCode, body)
	}
	var nir string
	var birth time.Time
	pool.QueryRow(ctx, `SELECT p.nir, p.birth_date FROM person p JOIN account a ON a.person_id = p.id WHERE a.id = $1`, h.id).Scan(&nir, &birth)
	if _, err := archive.Reinstate(ctx, testdb.Store(pool), archive.Reinstatement{NIR: provisioning.NIR(nir), BirthDate: birth,
		Operator: "agent-olga", IdentityCheckedBy: "bob"}); err != nil {
		t.Fatal(err)
	}
	r, err := window.ReceiptByReference(ctx, pool, ref)
	if err != nil || !r.Undone {
		t.Fatalf("the receipt after reinstatement: %+v %v", r, err)
	}
	rep, err := wave.BuildReport(ctx, pool, "w", wave.StatusOptions{})
	if err != nil || rep.Oppositions.Standing != 0 || rep.Accounts[provisioning.StateOpposed] != 0 {
		t.Fatalf("report after reinstatement: standing %d, opposed %d (%v)", rep.Oppositions.Standing, rep.Accounts[provisioning.StateOpposed], err)
	}
}

// A receipt names the channel the opposition came by, as recorded.
// (Before: an opposition through the public API read "téléphone".)
func TestReceiptNamesTheRealChannel(t *testing.T) {
	t.Parallel()
	for channel, want := range map[string]string{optout.ChannelAPI: "API publique", optout.ChannelWeb: "site internet", optout.ChannelAgent: "agent"} {
		pdf, err := optout.ReceiptPDF(&window.Receipt{Reference: "OPP-AAAAA-BBBBB", At: time.Now(), Channel: channel, FirstMasked: "Z**", Deadline: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("pdftotext", "-", "-")
		cmd.Stdin = bytes.NewReader(pdf)
		text, err := cmd.Output()
		if err != nil || !strings.Contains(string(text), want) || (channel == optout.ChannelAPI && strings.Contains(string(text), "téléphone")) {
			t.Errorf("%s receipt: %v\n%s", channel, err, text)
		}
	}
}

// The holder may activate their profile before the window ends, with code
// and birth date: it is active at once, can no longer be opposed, and the
// act is audited and counted in the report. (Before, only the window's end
// activated anybody.)
func TestEarlyActivationByTheHolder(t *testing.T) {
	t.Parallel()
	srv, pool, hs := serveNotified(t, 20, time.Now().Add(48*time.Hour))
	ctx := context.Background()
	activate := func(h holder) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/api/v1/activations", "application/json",
			strings.NewReader(`{"code":"`+h.code.String()+`","birth_date":"`+h.birth+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out) //nolint:errcheck
		return resp.StatusCode, out
	}
	if st, out := activate(hs[0]); st != 200 || out["status"] != "activated" {
		t.Fatalf("activation: %d %v", st, out)
	}
	var state string
	var byHolder bool
	pool.QueryRow(ctx, `SELECT state, activated_by_holder FROM account WHERE id = $1`, hs[0].id).Scan(&state, &byHolder) //nolint:errcheck
	if state != "active" || !byHolder {
		t.Fatalf("account is %s (by holder %v) after the activation", state, byHolder)
	}
	if st, out := activate(hs[0]); st != 409 || out["status"] != "already_active" {
		t.Fatalf("activating again: %d %v", st, out)
	}
	if st, out, _ := post(t, srv, `{"code":"`+hs[0].code.String()+`","birth_date":"`+hs[0].birth+`"}`); st == 200 {
		t.Fatalf("an opposition after the holder activated: %d %v", st, out)
	}
	// An opposed account is activated only once its opposition is withdrawn.
	if st, _, _ := post(t, srv, `{"code":"`+hs[1].code.String()+`","birth_date":"`+hs[1].birth+`"}`); st != 200 {
		t.Fatalf("opposing: %d", st)
	}
	if st, out := activate(hs[1]); st != 409 || out["status"] != "state" {
		t.Fatalf("activating an opposed account: %d %v", st, out)
	}
	var audited int
	pool.QueryRow(ctx, `SELECT count(*) FROM audit_event WHERE action = 'account.activated_by_holder' AND $1 = ANY(account_ids)`, hs[0].id).Scan(&audited) //nolint:errcheck
	rep, err := wave.BuildReport(ctx, pool, "w", wave.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if audited != 1 || rep.ActivatedByHolder != 1 {
		t.Fatalf("audited %d, report counts %d early activations", audited, rep.ActivatedByHolder)
	}
}

// Receipt references are guessed as codes are: each unknown reference counts
// against the client, who is made to wait after a few (before: no limit on
// /recu/).
func TestReceiptGuessesAreRateLimited(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	srv := httptest.NewServer(optout.NewHandler(newService(pool)))
	t.Cleanup(srv.Close)
	limited := false
	for i := range 12 {
		resp, err := http.Get(fmt.Sprintf("%s/recu/OPP-GUESS-%05d.pdf", srv.URL, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			limited = true
			break
		}
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if !limited {
		t.Fatal("twelve guessed receipt references, never limited")
	}
}

// The site's traffic is measured by route and status, for the deadline
// day's dashboards: the limits' 429s show, and a scanner's paths are one
// "unmatched" route, never a label of their own.
func TestSiteTrafficIsMeasuredByRouteAndStatus(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	hs := notified(t, pool, 5, time.Now().Add(24*time.Hour))
	svc := newService(pool)
	svc.Metrics = optout.NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(svc.Metrics)
	srv := httptest.NewServer(optout.NewHandler(svc))
	t.Cleanup(srv.Close)

	if st, _, _ := post(t, srv, `{"code":"`+hs[0].code.String()+`","birth_date":"`+hs[0].birth+`"}`); st != 200 {
		t.Fatalf("right pair: %d", st)
	}
	statuses := map[int]int{}
	for i := range 8 {
		st, _, _ := post(t, srv, `{"code":"`+key.Derive(int64(600_000+i)).String()+`","birth_date":"1970-01-01"}`)
		statuses[st]++
	}
	for _, path := range []string{"/wp-login.php", "/.env"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := promtest.Values(t, reg)
	for key, want := range map[string]float64{
		"ens_form_requests_total/200/POST /api/v1/oppositions":       1,
		"ens_form_requests_total/429/POST /api/v1/oppositions":       float64(statuses[429]),
		"ens_form_requests_total/404/unmatched":                      2,
		"ens_form_request_duration_seconds/POST /api/v1/oppositions": 9,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if statuses[429] == 0 {
		t.Errorf("8 wrong guesses were never slowed down: %v", statuses)
	}
	for key := range got {
		if strings.Contains(key, "wp-login") || strings.Contains(key, ".env") {
			t.Errorf("a requested path became a label: %s", key)
		}
	}
}

// A withdrawal and an early activation made on the public form, with the
// code and birth date, are told to the person through their own channel:
// whoever used a stolen letter is seen. An opposition made with the code is
// not (the holder of the code is the person it was sent to).
func TestFormChangesAreToldToThePerson(t *testing.T) {
	t.Parallel()
	srv, pool, hs := serveNotified(t, 20, time.Now().Add(48*time.Hour))
	submit := func(h holder, path string) {
		t.Helper()
		resp, err := http.PostForm(srv.URL+path, url.Values{"code": {h.code.String()}, "birth_date": {h.birth[8:10] + "/" + h.birth[5:7] + "/" + h.birth[:4]}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	told := func(h holder) map[string]int {
		t.Helper()
		out := map[string]int{}
		rows, err := pool.Query(context.Background(), `SELECT topic, count(*) FROM notice WHERE account_id = $1 AND kind = 'change' GROUP BY 1`, h.id)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var topic string
			var n int
			rows.Scan(&topic, &n) //nolint:errcheck
			out[topic] = n
		}
		return out
	}
	submit(hs[0], "/confirmer")
	if got := told(hs[0]); len(got) != 0 {
		t.Fatalf("an opposition with the code was told as a change: %v", got)
	}
	submit(hs[0], "/annuler")
	if got := told(hs[0]); got[provisioning.ChangeOppositionWithdrawn] != 1 {
		t.Fatalf("after a withdrawal on the form the person was told %v; want one notice of it", got)
	}
	submit(hs[1], "/activer")
	if got := told(hs[1]); got[provisioning.ChangeActivatedByHolder] != 1 {
		t.Fatalf("after an early activation on the form the person was told %v; want one notice of it", got)
	}
}
