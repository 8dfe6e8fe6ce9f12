package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning/feed"
)

// platformReceiver plays the Mon espace santé platform: it checks each
// push's signature, applies each change once — a push repeated under the
// same idempotency key is acknowledged, not applied again — and notes any
// push that would leave a gap or go back.
type platformReceiver struct {
	key []byte
	srv *httptest.Server

	mu      sync.Mutex
	applied []feed.Change
	keys    map[string]bool
	repeats int
	faults  []string
	// drop, when set, applies the next push then drops the connection
	// without answering, as a lost answer does.
	drop bool
}

func startPlatform(t testing.TB) *platformReceiver {
	p := &platformReceiver{key: []byte(strings.Repeat("k", 32)), keys: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// env is what ens needs to push to this receiver.
func (p *platformReceiver) env() []string {
	return []string{"ENS_PLATFORM_URL=" + p.srv.URL + "/changes", "ENS_PLATFORM_KEY=" + hex.EncodeToString(p.key)}
}

func (p *platformReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := notify.VerifyPlatformPush(p.key, r.Header, body, time.Now()); err != nil {
		p.fault("a push refused: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var batch struct {
		Changes []feed.Change `json:"changes"`
	}
	if err := json.Unmarshal(body, &batch); err != nil || len(batch.Changes) == 0 {
		p.fault("an unreadable push: %v", err)
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	key := r.Header.Get(notify.HeaderIdempotency)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys[key] {
		p.repeats++
	} else {
		next := int64(len(p.applied)) + 1
		if batch.Changes[0].Seq != next {
			p.faults = append(p.faults, fmt.Sprintf("push %s starts at %d, want %d", key, batch.Changes[0].Seq, next))
			http.Error(w, "gap", http.StatusConflict)
			return
		}
		for i, c := range batch.Changes {
			if c.Seq != next+int64(i) {
				p.faults = append(p.faults, fmt.Sprintf("push %s: change %d out of order", key, c.Seq))
			}
		}
		p.applied = append(p.applied, batch.Changes...)
		p.keys[key] = true
	}
	if p.drop {
		p.drop = false
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (p *platformReceiver) fault(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, fmt.Sprintf(format, args...))
}

// check says whether the platform holds the feed up to head, once each, in
// order.
func (p *platformReceiver) check(head int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.faults) > 0 {
		return fmt.Errorf("%d faults, first: %s", len(p.faults), p.faults[0])
	}
	if int64(len(p.applied)) != head {
		return fmt.Errorf("the platform applied %d changes, the feed holds %d", len(p.applied), head)
	}
	return nil
}

// The feed lists every change of a wave in order — each account created,
// notified, then activated — `--after` its last sequence prints nothing,
// and the worker pushes the same changes, signed, to the platform, which
// applies each once even when an answer is lost. Before, nothing told the
// platform what ens decided.
func TestChangeFeedAndItsPush(t *testing.T) {
	mailSink(t, mailsink.Options{})
	platform := startPlatform(t)
	for _, kv := range platform.env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("ENS_ACTIVATION_GRACE", "0s")
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("25", "31")
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	platform.mu.Lock()
	platform.drop = true // the first push's answer is lost: it is sent again, under its key
	platform.mu.Unlock()
	if code, out, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatalf("worker: exit %d\n%s%s", code, out, errs)
	}
	// The windows end (as six weeks later).
	if _, err := c.db().Exec(context.Background(), `UPDATE account SET notified_at = now() - interval '43 days',
		deadline = now() - interval '1 day' WHERE state = 'notified'`); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatalf("worker after the windows: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := c.run("changes", "--after", "0", "--limit", "10000")
	if code != 0 {
		t.Fatalf("ens changes: exit %d\n%s", code, errs)
	}
	var changes []feed.Change
	seen := map[int64][]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ch feed.Change
		if err := json.Unmarshal(sc.Bytes(), &ch); err != nil {
			t.Fatalf("a line that is not a change: %q", sc.Text())
		}
		if ch.Seq != int64(len(changes))+1 {
			t.Fatalf("change %d after %d changes: the feed has a gap or is out of order", ch.Seq, len(changes))
		}
		changes = append(changes, ch)
		seen[ch.AccountID] = append(seen[ch.AccountID], ch.Change)
	}
	var accounts, active int
	if err := c.db().QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE state = 'active' AND deadline IS NOT NULL)
		FROM account`).Scan(&accounts, &active); err != nil {
		t.Fatal(err)
	}
	activated := 0
	for _, cs := range seen {
		if cs[0] != "created" {
			t.Fatalf("an account's first change is %q", cs[0])
		}
		if strings.Join(cs, ",") == "created,notified,activated" {
			activated++
		}
	}
	if len(seen) != accounts || activated == 0 || activated != active {
		t.Fatalf("the feed names %d accounts (of %d), %d created, notified then activated (%d active after a notice)", len(seen), accounts, activated, active)
	}
	if code, out, _ := c.run("changes", "--after", fmt.Sprint(len(changes))); code != 0 || out != "" {
		t.Fatalf("after the last sequence: exit %d, %q; want nothing", code, out)
	}
	if err := platform.check(int64(len(changes))); err != nil {
		t.Fatal(err)
	}
	if platform.repeats == 0 {
		t.Fatalf("the push whose answer was lost was not sent again under its key")
	}
	if strings.Contains(errs, changes[0].NIR) {
		t.Fatal("a NIR in the log")
	}
}
