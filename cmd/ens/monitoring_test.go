package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/promtest"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
)

// freeAddr is a loopback address nothing listens on yet.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape reads url until until holds of its body, or fails after 60 s.
func scrape(t *testing.T, url string, until func(string) bool, logs *lockedBuffer) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && until(string(b)) {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed what was expected\n%s", url, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The alerting rules and the dashboard read metrics a real campaign
// exports: a wave sent by a long-running worker (with its relay and the
// platform's push), the form visited, the audit log anchored, bounce
// reports read, then `ens serve`'s and the worker's /metrics scraped — every
// metric the rules and the dashboard name is in one of them. Before, the
// test held them only against the metrics ens declares, so a metric never
// emitted (no row, no label) went unnoticed.
func TestDashboardReadsWhatARealCampaignExports(t *testing.T) {
	mailSink(t, mailsink.Options{})
	p := startPlatform(t)
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("40", "71")
	c.must("wave", "launch", "w")
	c.must("audit", "anchor")
	if err := os.MkdirAll(c.dir+"/bounces", 0o700); err != nil {
		t.Fatal(err)
	}
	c.must("bounces", "ingest", c.dir+"/bounces")
	for _, kv := range p.env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("ENS_METRICS_ALLOW", "127.0.0.1/32")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	health, public, ops := freeAddr(t), freeAddr(t), freeAddr(t)
	var logs lockedBuffer
	done := make(chan int, 2)
	for _, args := range [][]string{{"worker", "--health-addr", health}, {"serve", "--addr", public, "--ops-addr", ops}} {
		go func() {
			var out bytes.Buffer
			done <- Run(ctx, append([]string{"--database-url", c.url, "--var-dir", c.dir}, args...), strings.NewReader(""), &out, &logs)
		}()
	}
	worker := scrape(t, "http://"+health+"/metrics", func(b string) bool {
		return regexp.MustCompile(`ens_emails_total\{outcome="accepted"\} [1-9]`).MatchString(b) &&
			strings.Contains(b, `ens_job_duration_seconds_count{kind="close_windows",outcome="completed"}`)
	}, &logs)
	scrape(t, "http://"+public+"/", func(string) bool { return true }, &logs)
	server := scrape(t, "http://"+ops+"/metrics", func(b string) bool {
		return strings.Contains(b, "ens_platform_push_age_seconds") && strings.Contains(b, "ens_form_requests_total")
	}, &logs)
	promtest.Lint(t, worker)
	promtest.Lint(t, server)

	exposed := map[string]bool{}
	for _, body := range []string{worker, server} {
		for _, m := range regexp.MustCompile(`(?m)^(ens_[a-z_]+?)(_bucket|_count|_sum)?[{ ]`).FindAllStringSubmatch(body, -1) {
			exposed[m[1]] = true
			exposed[m[1]+m[2]] = true
		}
	}
	for _, file := range []string{"alerts.yml", "dashboard.json"} {
		text, err := os.ReadFile("../../docs/monitoring/" + file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range regexp.MustCompile(`\bens_[a-z_]+`).FindAllString(string(text), -1) {
			if !exposed[name] {
				t.Errorf("%s reads %s, which a real campaign's /metrics does not show", file, name)
			}
		}
	}
	cancel()
	for range 2 {
		if code := <-done; code != 0 {
			t.Fatalf("a process stopped with %d\n%s", code, logs.String())
		}
	}
}
