package optout_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
)

// formPost posts a step of the public form and returns its status and page.
func formPost(t *testing.T, srv string, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(srv+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var widgetConfig = regexp.MustCompile(`<altcha-widget[^>]* configuration="([^"]*)"`)

// solve does what the widget does in the browser: it finds the counter whose
// PBKDF2 key begins with the challenge's prefix, and returns the payload the
// widget posts.
func solve(t *testing.T, page string) string {
	t.Helper()
	m := widgetConfig.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page offers no challenge")
	}
	var cfg struct {
		Challenge struct {
			Parameters map[string]any `json:"parameters"`
			Signature  string         `json:"signature"`
		} `json:"challenge"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Challenge.Parameters
	nonce, _ := hex.DecodeString(p["nonce"].(string))
	salt, _ := hex.DecodeString(p["salt"].(string))
	for counter := uint32(0); ; counter++ {
		key, err := pbkdf2.Key(sha256.New, string(binary.BigEndian.AppendUint32(nonce, counter)), salt, int(p["cost"].(float64)), 32)
		if err != nil {
			t.Fatal(err)
		}
		if dk := hex.EncodeToString(key); strings.HasPrefix(dk, p["keyPrefix"].(string)) {
			b, _ := json.Marshal(map[string]any{"challenge": cfg.Challenge, "solution": map[string]any{"counter": counter, "derivedKey": dk}})
			return base64.StdEncoding.EncodeToString(b)
		}
	}
}

var passField = regexp.MustCompile(`name="pass" value="([^"]+)"`)

// An honest person behind an address a guesser has made wait gets through
// at once with a solved challenge: the page that makes them wait offers one
// (and says how long to wait without it), the solution lets one attempt
// through, and the steps that follow carry a pass for that code alone. A
// solution is spent once; the pass opens no other code.
func TestSolvedChallengeLetsTheHolderThroughAtOnce(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	hs := notified(t, pool, 5, time.Now().Add(48*time.Hour))
	svc := newService(pool)
	svc.Limiter.BaseDelay = 10 * time.Minute // the address waits longer than the test takes
	srv := newHTTPServer(t, optout.NewHandler(svc))
	holder := url.Values{"code": {hs[0].code.String()}, "birth_date": {hs[0].birth}}

	blocked := false
	for i := range 12 {
		if st, _ := formPost(t, srv, "/verifier", url.Values{"code": {key.Derive(int64(700_000 + i)).String()}, "birth_date": {"1970-01-01"}}); st == http.StatusTooManyRequests {
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatal("twelve wrong guesses from one address, never limited")
	}
	st, page := formPost(t, srv, "/verifier", holder)
	if st != http.StatusTooManyRequests || !strings.Contains(page, "Vous pourrez réessayer dans") {
		t.Fatalf("the holder behind the guesser: %d, want 429 saying how long to wait", st)
	}
	proof := solve(t, page)

	form := url.Values{"code": holder["code"], "birth_date": holder["birth_date"], "altcha": {proof}}
	st, page = formPost(t, srv, "/verifier", form)
	if st != http.StatusOK || !strings.Contains(page, "Confirmez votre opposition") {
		t.Fatalf("the holder with a solved challenge: %d, want the confirmation step", st)
	}
	m := passField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the confirmation step carries no pass")
	}
	pass := html.UnescapeString(m[1])
	st, page = formPost(t, srv, "/confirmer", url.Values{"code": holder["code"], "birth_date": holder["birth_date"], "pass": {pass}})
	if st != http.StatusOK || !strings.Contains(page, "Opposition enregistrée") {
		t.Fatalf("confirming with the pass: %d, want the receipt", st)
	}
	var state string
	pool.QueryRow(context.Background(), `SELECT state FROM account WHERE id = $1`, hs[0].id).Scan(&state) //nolint:errcheck
	if state != "opposed" {
		t.Fatalf("account is %s after the receipt", state)
	}

	// The guesser gains nothing: a spent solution, a forged one, or the
	// holder's pass on another code all wait.
	other := key.Derive(700_100).String()
	for name, f := range map[string]url.Values{
		"spent solution": {"code": {other}, "birth_date": {"1970-01-01"}, "altcha": {proof}},
		"forged":         {"code": {other}, "birth_date": {"1970-01-01"}, "altcha": {base64.StdEncoding.EncodeToString([]byte(`{"challenge":{},"solution":{}}`))}},
		"another's pass": {"code": {other}, "birth_date": {"1970-01-01"}, "pass": {pass}},
		"junk":           {"code": {other}, "birth_date": {"1970-01-01"}, "altcha": {"%%%"}, "pass": {"1.2"}},
	} {
		if st, _ := formPost(t, srv, "/verifier", f); st != http.StatusTooManyRequests {
			t.Errorf("%s from the waiting address: %d, want 429", name, st)
		}
	}
}
