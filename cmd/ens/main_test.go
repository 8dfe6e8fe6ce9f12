package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

func TestMain(m *testing.M) {
	// Every worker the tests start prints a rehearsal's addresses.
	os.Setenv("ENS_REFUSAL_ADDRESS", fixtures.LetterInfo.RefusalAddress) //nolint:errcheck
	os.Setenv("ENS_DPO_CONTACT", fixtures.LetterInfo.DPOContact)         //nolint:errcheck
	os.Exit(testdb.Main(m))
}

type cli struct {
	t   *testing.T
	url string
	dir string
}

func (c *cli) run(args ...string) (int, string, string) {
	return c.runStdin("", args...)
}

// runStdin runs ens with stdin as its standard input.
func (c *cli) runStdin(stdin string, args ...string) (int, string, string) {
	var out bytes.Buffer
	var errb lockedBuffer
	full := append([]string{"--database-url", c.url, "--var-dir", c.dir}, args...)
	code := Run(context.Background(), full, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// runLogging runs ens with its log going to stderr, which the test may read
// while it runs.
func (c *cli) runLogging(stderr *lockedBuffer, args ...string) (int, string) {
	return c.runLoggingStdin(stderr, "", args...)
}

// runLoggingStdin is runLogging with stdin as its standard input.
func (c *cli) runLoggingStdin(stderr *lockedBuffer, stdin string, args ...string) (int, string) {
	var out bytes.Buffer
	full := append([]string{"--database-url", c.url, "--var-dir", c.dir}, args...)
	code := Run(context.Background(), full, strings.NewReader(stdin), &out, stderr)
	return code, out.String()
}

// lockedBuffer is a buffer one goroutine writes while another reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// importFixture writes a synthetic registry of count people and imports it.
func (c *cli) importFixture(count, seed string) {
	c.t.Helper()
	reg := filepath.Join(c.dir, "reg-"+seed+".csv")
	if code, _, errs := c.run("fixtures", "registry", "--count", count, "--seed", seed, "-o", reg); code != 0 {
		c.t.Fatal(errs)
	}
	if code, _, errs := c.run("registry", "import", reg); code != 0 {
		c.t.Fatal(errs)
	}
}

// db connects to the CLI's database as the application role, until the
// test ends.
func (c *cli) db() *pgx.Conn {
	c.t.Helper()
	conn, err := pgx.Connect(context.Background(), c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (c *cli) json(v any, args ...string) {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("ens %v: exit %d\n%s", args, code, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("ens %v: %v\n%s", args, err, out)
	}
}

// mailSink starts an SMTP sink (keeping its messages) for the commands run
// by t, with a code key: what a test running workers needs. It sets the
// environment, so its test cannot run in parallel.
func mailSink(t *testing.T, opts mailsink.Options) *mailsink.Sink {
	t.Helper()
	opts.Keep = true
	sink, err := mailsink.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	t.Setenv("SMTP_URL", sink.URL())
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	return sink
}

func TestWaveEndToEnd(t *testing.T) {
	t.Setenv("ENS_AUDIT_KEY", strings.Repeat("ef", 32))
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	t.Setenv("SMTP_URL", sink.URL())
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	t.Setenv("ENS_POST_DELAY", "0")
	t.Setenv("ENS_RETRY_BASE", "10ms")
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "reg.csv")
	if code, _, errs := c.run("fixtures", "registry", "--count", "600", "--seed", "3", "-o", reg); code != 0 {
		t.Fatal(errs)
	}

	var imp map[string]any
	c.json(&imp, "registry", "import", reg, "--json")
	for _, k := range []string{"file", "read", "accepted", "inserted", "updated", "unchanged", "rejected", "reasons", "warnings"} {
		if _, ok := imp[k]; !ok {
			t.Fatalf("import JSON lacks %q: %v", k, imp)
		}
	}
	if imp["read"].(float64) != 600 || imp["rejected"].(float64) == 0 {
		t.Fatalf("import: %v", imp)
	}
	c.json(&imp, "registry", "import", reg, "--json")
	if imp["inserted"].(float64) != 0 || imp["updated"].(float64) != 0 {
		t.Fatalf("second import changed things: %v", imp)
	}

	bad := filepath.Join(c.dir, "bad.csv")
	os.WriteFile(bad, []byte("nir,shoe_size\n1,2\n"), 0o600)
	if code, _, errs := c.run("registry", "import", bad); code != 2 || !strings.Contains(errs, "shoe_size") {
		t.Fatalf("bad header: exit %d, %s", code, errs)
	}

	// A dry run says what the wave would do, and writes nothing.
	var preview struct {
		Selected  int64            `json:"selected"`
		Accounts  int64            `json:"accounts"`
		ByChannel map[string]int64 `json:"by_channel"`
		Postage   float64          `json:"letters_postage_eur"`
	}
	c.json(&preview, "wave", "launch", "w1", "--window", "1h", "--dry-run", "--json")
	if preview.Accounts == 0 || preview.Selected < preview.Accounts || preview.ByChannel["email"]+preview.ByChannel["letter"]+preview.ByChannel["unreachable"] != preview.Accounts ||
		preview.Postage != float64(preview.ByChannel["letter"])*0.80 {
		t.Fatalf("dry run: %+v", preview)
	}
	if code, out, _ := c.run("wave", "list"); code != 0 || strings.Contains(out, "w1") {
		t.Fatalf("the dry run created the wave: %s", out)
	}
	if code, out, errs := c.run("wave", "launch", "w1", "--window", "1h"); code != 0 || !strings.Contains(out, "rehearsal") ||
		!strings.Contains(out, fmt.Sprintf("%d accounts created", preview.Accounts)) {
		t.Fatalf("launch: %d %s %s", code, out, errs)
	}
	// Two workers share the database.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() {
			var errs string
			codes[i], _, errs = c.run("worker", "--until-idle")
			if codes[i] != 0 {
				t.Log(errs)
			}
		})
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("workers exited %v", codes)
	}
	var st struct {
		Wave     string                      `json:"wave"`
		Window   string                      `json:"window"`
		Accounts map[string]int64            `json:"accounts"`
		Notices  map[string]map[string]int64 `json:"notices"`
	}
	c.json(&st, "wave", "status", "w1", "--json")
	for _, s := range []string{"pending", "notified", "opposed", "active", "closed", "cancelled"} {
		if _, ok := st.Accounts[s]; !ok {
			t.Fatalf("status lacks state %s: %v", s, st.Accounts)
		}
	}
	if st.Accounts["pending"] != 0 || st.Accounts["notified"] == 0 || st.Window != "1h0m0s" {
		t.Fatalf("status after workers: %+v", st)
	}
	if int64(sink.Count()) != st.Notices["email"]["sent"] {
		t.Fatalf("%d emails reached the server, %d recorded", sink.Count(), st.Notices["email"]["sent"])
	}
	// Bounce reports are read from a Maildir; the counts are a contract.
	box := filepath.Join(c.dir, "bounces")
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(box, sub), 0o700) //nolint:errcheck
	}
	os.WriteFile(filepath.Join(box, "new", "1.host"), []byte("Subject: out of office\r\n\r\nback monday"), 0o600) //nolint:errcheck
	var counts map[string]float64
	c.json(&counts, "bounces", "ingest", box, "--json")
	for _, k := range []string{"messages", "parsed", "permanent", "temporary", "success", "not_a_report", "not_ours", "unreadable", "letters_queued"} {
		if _, ok := counts[k]; !ok {
			t.Fatalf("bounces ingest JSON lacks %q: %v", k, counts)
		}
	}
	if counts["messages"] != 1 || counts["not_a_report"] != 1 {
		t.Fatalf("bounces ingest: %v", counts)
	}
	if c.json(&counts, "bounces", "ingest", box, "--json"); counts["messages"] != 0 {
		t.Fatalf("a Maildir message read twice: %v", counts)
	}
	// A folder of messages is read whatever their names (a Maildir's new/
	// as Postfix writes it); a file that is no mail at all makes the
	// command say so and exit 5 after reading the others. (Before: only
	// *.eml files were read, and such a folder answered 0 messages, exit 0.)
	folder := filepath.Join(c.dir, "reports")
	os.MkdirAll(folder, 0o700)                                                                                            //nolint:errcheck
	os.WriteFile(filepath.Join(folder, "1765000000.M1P2.mx"), []byte("Subject: out of office\r\n\r\nback monday"), 0o600) //nolint:errcheck
	if c.json(&counts, "bounces", "ingest", folder, "--json"); counts["messages"] != 1 || counts["not_a_report"] != 1 {
		t.Fatalf("a folder of messages without .eml names: %v", counts)
	}
	os.WriteFile(filepath.Join(folder, "core"), []byte("\x7fELF\x00\x00 not mail"), 0o600) //nolint:errcheck
	if code, out, errs := c.run("bounces", "ingest", folder, "--json"); code != exitPartial || json.Unmarshal([]byte(out), &counts) != nil ||
		counts["messages"] != 2 || counts["unreadable"] != 1 || !strings.Contains(errs, "1 of 2 file(s) could not be read as mail") {
		t.Fatalf("a folder holding a file that is no mail: exit %d, %s %s", code, out, errs)
	}
	// The printer's round trip through the CLI.
	var batches []struct {
		ID     int64  `json:"id"`
		File   string `json:"file"`
		SHA256 string `json:"sha256"`
		State  string `json:"state"`
	}
	c.json(&batches, "letters", "batches", "--wave", "w1", "--json")
	if len(batches) == 0 || batches[0].State != "rendered" {
		t.Fatalf("letters batches: %+v", batches)
	}
	acks := filepath.Join(c.dir, "acks.csv")
	today := time.Now().In(provisioning.Paris).Format(time.DateOnly)
	ackFile := "batch,posted_on,sha256\n" + filepath.Base(batches[0].File) + "," + today + "," + batches[0].SHA256 + "\nnope," + today + ",\n"
	os.WriteFile(acks, []byte(ackFile), 0o600) //nolint:errcheck
	var ackRes struct {
		Batches  int `json:"batches_acknowledged"`
		Rejected []struct {
			Line int `json:"line"`
		} `json:"rejected"`
	}
	// A printer's file of which a line is refused is applied but for that
	// line, and exits 5 so that the printer's nightly job notices (before:
	// exit 0).
	code, out, errs := c.run("letters", "acks", acks, "--json", "--operator", "imprimeur")
	if code != exitPartial || json.Unmarshal([]byte(out), &ackRes) != nil || !strings.Contains(errs, "1 line(s) refused, the others applied") {
		t.Fatalf("letters acks with a refused line: exit %d, %s %s", code, out, errs)
	}
	if ackRes.Batches != 1 || len(ackRes.Rejected) != 1 || ackRes.Rejected[0].Line != 3 {
		t.Fatalf("letters acks: %+v", ackRes)
	}
	returns := filepath.Join(c.dir, "returns.csv")
	os.WriteFile(returns, []byte("reference,returned_on\nENS-999999999,"+today+"\n"), 0o600) //nolint:errcheck
	if code, out, _ := c.run("letters", "returned", returns); code != exitPartial || !strings.Contains(out, "1 refused") {
		t.Fatalf("letters returned: %d %s", code, out)
	}
	var rec struct {
		Clean  bool `json:"clean"`
		Checks []struct {
			Name  string `json:"name"`
			Count int64  `json:"count"`
		} `json:"checks"`
	}
	if code, out, errs := c.run("reconcile", "w1", "--json"); code != 0 || json.Unmarshal([]byte(out), &rec) != nil || !rec.Clean || len(rec.Checks) < 10 {
		t.Fatalf("reconcile: exit %d %s %s", code, out, errs)
	}
	if code, out, _ := c.run("audit", "verify"); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	if code, _, _ := c.run("wave", "extend", "w1", "--until", "2020-01-01"); code != 2 {
		t.Fatalf("an extension into the past was accepted: %d", code)
	}
	var purge map[string]any
	c.json(&purge, "archive", "purge", "--dry-run", "--json")
	if _, ok := purge["due"]; !ok {
		t.Fatalf("purge JSON: %v", purge)
	}
}

func TestClearFailures(t *testing.T) {
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	if code, _, errs := c.run("registry", "import", filepath.Join(c.dir, "missing.csv")); code != 1 || !strings.Contains(errs, "reading registry file") {
		t.Fatalf("unreadable file: exit %d, %q", code, errs)
	}
	// Nothing listens on port 1: a clear message, no panic, nothing half-done.
	down := &cli{t: t, url: "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", dir: c.dir}
	reg := filepath.Join(c.dir, "reg.csv")
	os.WriteFile(reg, []byte("nir,last_name,first_name,birth_date\n"), 0o600)
	if code, _, errs := down.run("registry", "import", reg); code != 1 || !strings.Contains(errs, "connecting to PostgreSQL") {
		t.Fatalf("database down: exit %d, %q", code, errs)
	}
	if code, _, errs := c.run("account", "show", "255081416802539"); code != 2 || strings.Contains(errs, "255081416802539") {
		t.Fatalf("bad NIR: exit %d, %q (the NIR must not be echoed)", code, errs)
	}
	if code, _, _ := c.run("wave", "launch", "x", "--departments", "20"); code != 2 {
		t.Fatalf("department 20 accepted: %d", code)
	}
	// An opposition without the code needs an identity check, named.
	if code, _, errs := c.run("optout", "--nir", "255081416802538", "--birth-date", "1955-08-12", "--operator", "olga"); code != 2 || !strings.Contains(errs, "identity-checked-by") {
		t.Fatalf("optout --nir without an identity check: %d %s", code, errs)
	}
	if code, _, _ := c.run("optout", "ABCD-EFGH-JKMN", "--nir", "255081416802538", "--operator", "olga"); code != 2 {
		t.Fatalf("a code and a NIR together: %d", code)
	}
	// A NIR given on the command line is kept by ps and the shell history:
	// ens warns, as for a code (before: silently), and never echoes it.
	code, _, errs := c.run("optout", "--nir", "255081416802538", "--birth-date", "1955-08-12", "--operator", "olga", "--identity-checked-by", "bob")
	if !strings.Contains(errs, "the NIR was given on the command line") || strings.Contains(errs, "255081416802538") {
		t.Fatalf("optout --nir NIR on the command line: exit %d, stderr %q; want a warning without the NIR", code, errs)
	}
	// Overseas collectivities' postcodes (98xxx) give departments a wave can select.
	if code, _, errs := c.run("wave", "launch", "pacific", "--departments", "987,988,975"); code != 0 {
		t.Fatalf("departments 987, 988, 975 refused: %d %s", code, errs)
	}
}

// dbProxy forwards TCP to PostgreSQL and can cut every connection, as a
// restart or a failover does.
type dbProxy struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	down    bool
	conns   []net.Conn
}

func startDBProxy(t *testing.T, backend string) *dbProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, backend: backend}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }() //nolint:errcheck
			go func() { io.Copy(c, b); c.Close() }() //nolint:errcheck
		}
	}()
	return p
}

// cut closes every connection and refuses new ones until restore.
func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// ens worker --until-idle rides out the database going away mid-wave (a
// restart or a failover): it waits, logs once when it goes and once when it
// is back, and finishes the wave. (Before: exit 1 "counting outstanding
// jobs: … the database system is shutting down".)
func TestWorkerRidesOutTheDatabase(t *testing.T) {
	sink, err := mailsink.Start(mailsink.Options{Delay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	t.Setenv("SMTP_URL", sink.URL())
	t.Setenv("ENS_CODE_KEY", strings.Repeat("cd", 32))
	t.Setenv("ENS_RETRY_BASE", "10ms")
	t.Setenv("ENS_DB_WAIT", "1m")
	direct := testdb.URL(t)
	c := &cli{t: t, url: direct, dir: t.TempDir()}
	reg := filepath.Join(c.dir, "reg.csv")
	if code, _, errs := c.run("fixtures", "registry", "--count", "500", "--seed", "5", "-o", reg); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("registry", "import", reg); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("wave", "launch", "w1"); code != 0 {
		t.Fatal(errs)
	}
	u, _ := url.Parse(direct)
	proxy := startDBProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	viaProxy := &cli{t: t, url: u.String(), dir: c.dir}
	done := make(chan struct{})
	var code int
	var logged lockedBuffer
	go func() {
		defer close(done)
		code, _ = viaProxy.runLogging(&logged, "worker", "--until-idle")
	}()
	// Generous: under a loaded CI machine (-race, every package at once)
	// the wave itself takes tens of seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sink.WaitCount(ctx, 40); err != nil {
		t.Fatal(err)
	}
	proxy.cut()
	// The database stays away until the worker says it is waiting for it.
	tick := time.NewTicker(10 * time.Millisecond)
	for !strings.Contains(logged.String(), "database unreachable") {
		select {
		case <-ctx.Done():
			t.Fatalf("the worker never waited for the database:\n%s", logged.String())
		case <-tick.C:
		}
	}
	tick.Stop()
	proxy.restore()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the worker never finished after the database came back")
	}
	if errs := logged.String(); code != 0 || !strings.Contains(errs, "database back") {
		t.Fatalf("worker exit %d\n%s", code, errs)
	}
	var st struct {
		Accounts map[string]int64 `json:"accounts"`
	}
	c.json(&st, "wave", "status", "w1", "--json")
	if st.Accounts["pending"] != 0 {
		t.Fatalf("%d accounts never notified after the outage", st.Accounts["pending"])
	}
}

// Removing the last events of the audit log leaves an intact chain; an
// anchor shipped elsewhere catches it, and a forged anchor is refused.
// (Before: 14 → 11 events, ens audit verify still OK, and nothing else.)
func TestAuditAnchorsCatchARemovedTail(t *testing.T) {
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	t.Setenv("ENS_AUDIT_KEY", strings.Repeat("ef", 32))
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "reg.csv")
	if code, _, errs := c.run("fixtures", "registry", "--count", "50", "--seed", "4", "-o", reg); code != 0 {
		t.Fatal(errs)
	}
	c.run("registry", "import", reg)
	c.run("wave", "launch", "w1")
	anchors := filepath.Join(c.dir, "anchors.jsonl")
	if code, out, errs := c.run("audit", "anchor", "--file", anchors); code != 0 || !strings.Contains(out, `"mac"`) {
		t.Fatalf("anchor: %d %s %s", code, out, errs)
	}
	// Anchors must be fresh: a file cut back to an older line, or anchors
	// that stopped, no longer vouch (before: any old anchor passed).
	if code, out, _ := c.run("audit", "verify", "--anchor", anchors, "--max-anchor-age", "1ms"); code != 3 || !strings.Contains(out, "newest anchor was taken") {
		t.Fatalf("verify --anchor with an anchor older than --max-anchor-age: %d %s", code, out)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.OwnerURL(c.url)) // a DBA's rights
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM audit_event WHERE id > (SELECT max(id) - 2 FROM audit_event)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := c.run("audit", "verify"); code != 0 {
		t.Fatalf("the chain alone (it cannot see a removed tail): %d %s", code, out)
	}
	if code, out, _ := c.run("audit", "verify", "--anchor", anchors); code != 3 || !strings.Contains(out, "was removed") {
		t.Fatalf("verify --anchor after the tail was removed: %d %s", code, out)
	}
	raw, _ := os.ReadFile(anchors)
	forged := strings.Replace(string(raw), `"id":`, `"id":1`, 1)
	os.WriteFile(anchors, []byte(forged), 0o600) //nolint:errcheck
	if code, out, _ := c.run("audit", "verify", "--anchor", anchors); code != 3 || !strings.Contains(out, "not signed") {
		t.Fatalf("a forged anchor: %d %s", code, out)
	}
}

// Whoever owns the tables can re-chain the whole audit log as plain SHA-256,
// with no key: without ENS_AUDIT_KEY, ens audit verify refuses to vouch
// rather than answer "intact" (before: "audit log intact", exit 0); asked
// for a consistency check only, it says that it proves nothing; with the
// key, the forgery is caught. Each anchor names the one before it.
func TestAuditVerifyWithoutTheKeyRefusesToVouch(t *testing.T) {
	t.Setenv("ENS_AUDIT_KEY", strings.Repeat("ef", 32))
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("20", "8")
	c.run("wave", "launch", "w1")
	anchors := filepath.Join(c.dir, "anchors.jsonl")
	for range 2 {
		if code, _, errs := c.run("audit", "anchor", "--file", anchors); code != 0 {
			t.Fatal(errs)
		}
	}
	got, err := readAnchors(anchors)
	if err != nil || len(got) != 2 || got[1].Prev != got[0].MAC || got[1].Prev == "" {
		t.Fatalf("anchors: %+v %v; want the second naming the first", got, err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.OwnerURL(c.url))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The owner re-chains every event as plain SHA-256, keyed = false.
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, at, actor, action, wave_id, account_ids, details::text FROM audit_event ORDER BY id`)
		if err != nil {
			return err
		}
		type ev struct {
			e       audit.Event
			details string
		}
		events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ev, error) {
			var x ev
			err := r.Scan(&x.e.ID, &x.e.At, &x.e.Actor, &x.e.Action, &x.e.WaveID, &x.e.AccountIDs, &x.details)
			return x, err
		})
		if err != nil {
			return err
		}
		prev := make([]byte, 32)
		for _, x := range events {
			h := plainEventHash(prev, x.e, []byte(x.details))
			if _, err := tx.Exec(ctx, `UPDATE audit_event SET prev_hash = $2, hash = $3, keyed = false WHERE id = $1`, x.e.ID, prev, h); err != nil {
				return err
			}
			prev = h
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("ENS_AUDIT_KEY", "")
	if code, out, errs := c.run("audit", "verify"); code != 2 || !strings.Contains(errs, "needs ENS_AUDIT_KEY") {
		t.Fatalf("verify without the key, after the owner re-chained the log: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := c.run("audit", "verify", "--anchor", anchors); code != 2 {
		t.Fatalf("verify --anchor without the key: exit %d %s", code, out)
	}
	if code, out, _ := c.run("audit", "verify", "--unkeyed"); code != 0 || !strings.Contains(out, "proves nothing") {
		t.Fatalf("an unkeyed consistency check: exit %d %s", code, out)
	}
	t.Setenv("ENS_AUDIT_KEY", strings.Repeat("ef", 32))
	if code, out, _ := c.run("audit", "verify", "--anchor", anchors); code != 3 {
		t.Fatalf("verify --anchor with the key, after the owner re-chained the log: exit %d %s", code, out)
	}
}

// plainEventHash is the audit chain's hash without a key, as whoever owns
// the tables can compute it (the audit package's own, unkeyed).
func plainEventHash(prev []byte, e audit.Event, details []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	var buf [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(b)))
		h.Write(buf[:])
		h.Write(b)
	}
	field(fmt.Appendf(nil, "%d", e.ID))
	field([]byte(e.At.UTC().Format(time.RFC3339Nano)))
	field([]byte(e.Actor))
	field([]byte(e.Action))
	if e.WaveID != nil {
		field(fmt.Appendf(nil, "%d", *e.WaveID))
	} else {
		field(nil)
	}
	field(fmt.Appendf(nil, "%v", e.AccountIDs))
	field(details)
	return h.Sum(nil)
}
