package optout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/window"
)

// Behind the TLS proxy every request comes from the proxy's address: the
// limits must count the client the proxy reports, not the proxy. One
// client's typos slow that client, nobody else; a client that forges the
// header is still counted by its own address. (Before: five typos by
// anyone put the whole country behind 2 s … 15 min of 429.)
func TestRateLimitsHoldBehindAProxy(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	hs := notified(t, pool, 20, time.Now().Add(48*time.Hour))
	svc := newService(pool)
	svc.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	srv := httptest.NewServer(optout.NewHandler(svc))
	defer srv.Close()
	post := func(forwarded, code, birth string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/oppositions", strings.NewReader(`{"code":"`+code+`","birth_date":"`+birth+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if forwarded != "" {
			req.Header.Set("X-Forwarded-For", forwarded)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	wrong := key.Derive(900_001).String()
	for range 8 {
		post("198.51.100.7", wrong, "1970-01-01") // a client typing wrong codes
	}
	if st := post("198.51.100.7", wrong, "1970-01-01"); st != 429 {
		t.Fatalf("the guessing client: %d, want 429", st)
	}
	if st := post("203.0.113.9", hs[0].code.String(), hs[0].birth); st != 200 {
		t.Fatalf("another client behind the same proxy: %d, want 200", st)
	}
	// A forged header from an untrusted hop: the rightmost untrusted
	// address (the one the proxy saw) is who is counted.
	if st := post("10.9.9.9, 198.51.100.7", wrong, "1970-01-01"); st != 429 {
		t.Fatalf("the guessing client forging an address on the left: %d, want 429", st)
	}
}

// A success takes back only its own attempt: five guesses, a lookup with
// one's own code, five more guesses — the guesser is slowed down. (Before:
// any success wiped the address's failures, and 5,000 guesses of 5,000
// went through.)
func TestSuccessDoesNotWipeTheHistory(t *testing.T) {
	t.Parallel()
	srv, _, hs := serveNotified(t, 10, time.Now().Add(48*time.Hour))
	body := func(code, birth string) string { return `{"code":"` + code + `","birth_date":"` + birth + `"}` }
	limited := 0
	for round := range 4 {
		for i := range 5 {
			if st, _, _ := post(t, srv, body(key.Derive(int64(800_000+round*10+i)).String(), "1970-01-01")); st == 429 {
				limited++
			}
		}
		post(t, srv, body(hs[round].code.String(), hs[round].birth)) // a success in between
	}
	if limited == 0 {
		t.Fatal("20 wrong guesses with successes in between were never slowed down")
	}
}

// Concurrent attempts on one code are counted before any lookup: no more
// than the five free attempts and the one that starts the delay get through.
// (Before: 103 of 200 concurrent attempts passed.)
func TestConcurrentGuessesAreCountedBeforeTheLookup(t *testing.T) {
	t.Parallel()
	srv, _, hs := serveNotified(t, 5, time.Now().Add(48*time.Hour))
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(context.Background(), "POST", srv.URL+"/api/v1/oppositions",
				strings.NewReader(`{"code":"`+hs[0].code.String()+`","birth_date":"1901-01-0`+string(rune('1'+i%9))+`"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 429 {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := passed.Load(); n > 6 {
		t.Fatalf("%d of 200 concurrent guesses on one code reached the lookup, want at most 6", n)
	}
}

// An IPv6 subscriber holds a whole /64: its addresses share one key.
func TestIPv6ClientsKeyedOnTheirSlash64(t *testing.T) {
	t.Parallel()
	svc := &optout.Service{}
	a := svc.ClientAddr(&http.Request{RemoteAddr: "[2001:db8:1:2:aaaa::1]:5555"})
	b := svc.ClientAddr(&http.Request{RemoteAddr: "[2001:db8:1:2:bbbb::9]:6666"})
	c := svc.ClientAddr(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:6666"})
	if a != b || a == c {
		t.Fatalf("keys %q %q %q: one /64 must be one key", a, b, c)
	}
}

// A person whose code is being attacked (the API answers 429 for it) can
// still oppose through the call centre: an agent checks their identity and
// records the opposition without the code — both names audited.
func TestVictimOfAnAttackOpposesThroughTheCallCentre(t *testing.T) {
	t.Parallel()
	srv, pool, hs := serveNotified(t, 5, time.Now().Add(48*time.Hour))
	victim := hs[0]
	for i := range 10 {
		post(t, srv, `{"code":"`+victim.code.String()+`","birth_date":"1901-01-0`+string(rune('1'+i%9))+`"}`)
	}
	if st, _, _ := post(t, srv, `{"code":"`+victim.code.String()+`","birth_date":"`+victim.birth+`"}`); st != 429 {
		t.Fatalf("the attacked code: %d, want 429", st)
	}
	ctx := context.Background()
	var nir string
	pool.QueryRow(ctx, `SELECT p.nir FROM person p JOIN account a ON a.person_id = p.id WHERE a.id = $1`, victim.id).Scan(&nir)
	birth, _ := time.Parse(time.DateOnly, victim.birth)
	res, err := window.OpposeByAgent(ctx, testdb.Store(pool), window.AgentOpposition{NIR: provisioning.NIR(nir), BirthDate: birth,
		Operator: "olga", IdentityCheckedBy: "marc"})
	if err != nil || res.Receipt == nil || res.AlreadyOpposed {
		t.Fatalf("the call centre's opposition: %+v %v", res, err)
	}
	var checkedBy string
	pool.QueryRow(ctx, `SELECT details->>'identity_checked_by' FROM audit_event WHERE action = 'account.opposed' AND actor = 'olga'`).Scan(&checkedBy)
	if checkedBy != "marc" {
		t.Fatalf("audited identity check by %q", checkedBy)
	}
	// A wrong birth date answers as a wrong pair does.
	if _, err := window.OpposeByAgent(ctx, testdb.Store(pool), window.AgentOpposition{NIR: provisioning.NIR(nir), BirthDate: birth.AddDate(0, 0, 1),
		Operator: "olga", IdentityCheckedBy: "marc"}); !errors.Is(err, window.ErrNoMatch) {
		t.Fatalf("a wrong birth date: %v", err)
	}
}

// A mailed opposition counts by its postmark: received after the deadline,
// posted before it, it is recorded and its receipt says so; posted after,
// it is refused. (Before: refused whatever its postmark.)
func TestMailedOppositionCountsByItsPostmark(t *testing.T) {
	t.Parallel()
	_, pool, hs := serveNotified(t, 5, time.Now().Add(48*time.Hour))
	svc := newService(pool)
	h := hs[0]
	// Its window ended two days ago.
	if _, err := pool.Exec(context.Background(), `UPDATE account SET notified_at = now() - interval '10 days', deadline = now() - interval '2 days' WHERE id = $1`, h.id); err != nil {
		t.Fatal(err)
	}
	late := time.Now().AddDate(0, 0, -1)
	inTime := time.Now().AddDate(0, 0, -3)
	req := optout.Request{Code: h.code.String(), BirthDate: h.birth, Client: "agent:olga", Channel: optout.ChannelAgent, Actor: "olga"}
	if _, err := svc.Oppose(context.Background(), req); !errors.Is(err, window.ErrWindowClosed) {
		t.Fatalf("without a postmark, after the deadline: %v", err)
	}
	req.PostmarkedOn = &late
	if _, err := svc.Oppose(context.Background(), req); !errors.Is(err, window.ErrWindowClosed) {
		t.Fatalf("posted after the deadline: %v", err)
	}
	req.PostmarkedOn = &inTime
	res, err := svc.Oppose(context.Background(), req)
	if err != nil || res.Receipt.PostmarkedOn == nil {
		t.Fatalf("posted before the deadline: %+v %v", res, err)
	}
	pdf, _ := optout.ReceiptPDF(res.Receipt)
	cmd := exec.Command("pdftotext", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	if text, err := cmd.Output(); err != nil || !strings.Contains(string(text), "cachet de la poste") {
		t.Fatalf("the receipt does not state the postmark: %v\n%s", err, text)
	}
}

// A client that must wait is answered before anything is written: 300
// further guesses from a blocked address, each of another code, add no row
// to the limits (before: one row per code guessed, ~1.6 GB an hour at
// 2,700 guesses a second).
func TestBlockedClientWritesNothing(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	srv := httptest.NewServer(optout.NewHandler(newService(pool)))
	t.Cleanup(srv.Close)
	guess := func(i int) int {
		st, _, _ := post(t, srv, fmt.Sprintf(`{"code":%q,"birth_date":"1970-01-01"}`, key.Derive(int64(1_000_000+i)).String()))
		return st
	}
	blocked := false
	for i := range 10 {
		if guess(i) == http.StatusTooManyRequests {
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatal("ten wrong guesses from one address, never limited")
	}
	var before, after int
	pool.QueryRow(context.Background(), `SELECT count(*) FROM rate_limit`).Scan(&before) //nolint:errcheck
	for i := range 300 {
		if st := guess(100 + i); st != http.StatusTooManyRequests {
			t.Fatalf("guess %d from a blocked address: %d, want 429", i, st)
		}
	}
	pool.QueryRow(context.Background(), `SELECT count(*) FROM rate_limit`).Scan(&after) //nolint:errcheck
	if after-before > 2 {
		t.Fatalf("300 guesses from a blocked address added %d rows to the limits", after-before)
	}
}

// An address shared with a guesser never locks the honest person out: the
// delays start short and grow gently — each announced in Retry-After, none
// over a minute for the first dozen failures — and once the announced wait
// is over, the holder's right code and birth date from that same address
// go through. (Before, delays doubled: 64 s at the eleventh failure, 128 s
// at the twelfth.)
func TestSharedAddressWaitsButIsNeverLockedOut(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	hs := notified(t, pool, 20, time.Now().Add(48*time.Hour))
	svc := newService(pool)
	now := time.Now()
	var mu sync.Mutex
	svc.Limiter.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := httptest.NewServer(optout.NewHandler(svc))
	defer srv.Close()
	failures := 0
	for i := range 40 {
		if failures == 12 {
			break
		}
		st, _, hdr := post(t, srv, fmt.Sprintf(`{"code":%q,"birth_date":"1970-01-01"}`, key.Derive(int64(800_000+i)).String()))
		switch st {
		case http.StatusTooManyRequests:
			wait, err := time.ParseDuration(hdr.Get("Retry-After") + "s")
			if err != nil || wait > time.Minute {
				t.Fatalf("after %d failures the address must wait %q; want under a minute", failures, hdr.Get("Retry-After"))
			}
			mu.Lock()
			now = now.Add(wait)
			mu.Unlock()
		default:
			failures++
		}
	}
	// The guesser has just failed again: the address waits, then the
	// holder gets through.
	st, _, hdr := post(t, srv, fmt.Sprintf(`{"code":%q,"birth_date":%q}`, hs[0].code.String(), hs[0].birth))
	if st != http.StatusTooManyRequests {
		t.Fatalf("right after a failure: %d, want 429", st)
	}
	wait, _ := time.ParseDuration(hdr.Get("Retry-After") + "s")
	mu.Lock()
	now = now.Add(wait)
	mu.Unlock()
	if st, body, _ := post(t, srv, fmt.Sprintf(`{"code":%q,"birth_date":%q}`, hs[0].code.String(), hs[0].birth)); st != http.StatusOK {
		t.Fatalf("the holder after the announced wait: %d %v, want 200", st, body)
	}
}
