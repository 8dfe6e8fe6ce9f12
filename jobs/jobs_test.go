package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/promtest"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var testKey = optout.Key(bytes.Repeat([]byte{7}, 32))

type env struct {
	pool   *pgxpool.Pool
	sink   *mailsink.Sink
	deps   *jobs.Deps
	wave   *provisioning.Wave
	config *jobs.Config // nil: testConfig
}

func setup(t testing.TB, people int64, rule mailsink.Rule) *env {
	t.Helper()
	return setupChunks(t, people, rule, 40, 0)
}

func setupChunks(t testing.TB, people int64, rule mailsink.Rule, chunk int, emailShare float64) *env {
	t.Helper()
	ctx := context.Background()
	pool := testdb.Pool(t)
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: people, Seed: 42, RejectShare: -1, EmailShare: emailShare})
	sink, err := mailsink.Start(mailsink.Options{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	sink.SetRule(rule)
	mailer, err := notify.NewMailer(notify.SMTPConfig{URL: sink.URL(), Connections: 3, Key: testKey.MailKey(), ProbeEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mailer.Close)
	ins, err := jobs.NewInsertClient(pool)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wave.Launch(ctx, testdb.Store(pool), provisioning.WaveSpec{Name: "w1", Actor: "test"}, jobs.Enqueuer(ins),
		wave.LaunchOptions{ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return &env{pool: pool, sink: sink, deps: testDeps(t, pool, mailer), wave: res.Wave}
}

func testDeps(t testing.TB, pool *pgxpool.Pool, mailer *notify.Mailer) *jobs.Deps {
	return &jobs.Deps{Pool: pool, AuditKey: testdb.AuditKey, Mailer: mailer, Key: testKey, LettersDir: t.TempDir(), Letter: fixtures.LetterInfo, SettleEvery: 5, GiveUpAfter: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
}

func (e *env) client(t testing.TB) *river.Client[pgx.Tx] {
	t.Helper()
	if e.config != nil {
		c, err := jobs.NewClient(e.deps, *e.config)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return testClient(t, e.deps)
}

// testConfig works the queues as ens worker does, with short delays.
var testConfig = jobs.Config{RetryBase: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
	FetchCooldown: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}

func testClient(t testing.TB, deps *jobs.Deps) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := jobs.NewClient(deps, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runUntilIdle works the queues until nothing is due, like ens worker --until-idle.
func (e *env) runUntilIdle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	letters := jobs.LetterQueuer(c)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		n, err := jobs.Outstanding(ctx, e.deps, time.Second)
		if err != nil {
			e.dumpJobs(t)
			t.Fatal(err)
		}
		if n > 0 {
			continue
		}
		if g, err := jobs.SweepLetters(ctx, e.pool, letters); err != nil {
			t.Fatal(err)
		} else if g == 0 {
			return
		}
	}
}

// dumpJobs logs the jobs not completed, to tell why a run did not end.
func (e *env) dumpJobs(t testing.TB) {
	rows, err := e.pool.Query(context.Background(), `SELECT id, kind, state::text, attempt, errors::text, args::text
		FROM river_job WHERE state <> 'completed' ORDER BY id`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, state, errs, args string
		var attempt int
		var errsN, argsN *string
		rows.Scan(&id, &kind, &state, &attempt, &errsN, &argsN)
		if errsN != nil {
			errs = *errsN
		}
		if argsN != nil {
			args = *argsN
		}
		t.Logf("job %d %s %s attempt %d args %s errors %.400s", id, kind, state, attempt, args, errs)
	}
}

func TestNoticesReachEveryoneOnceWithFallback(t *testing.T) {
	t.Parallel()
	e := setup(t, 400, func(rcpt string) error {
		switch {
		case strings.Contains(rcpt, "3@"): // mailbox unknown
			return mailsink.Permanent
		case strings.Contains(rcpt, "7@"): // always busy: retries run out
			return mailsink.Temporary
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	e.deps.Metrics = jobs.NewMetrics(reg)
	e.runUntilIdle(t)
	ctx := context.Background()

	var pending, notified, active, lettersFor550, emailsFailed int64
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'notified'),
		count(*) FILTER (WHERE state = 'active') FROM account`).Scan(&pending, &notified, &active)
	if pending != 0 || notified == 0 || active == 0 {
		t.Fatalf("pending %d, notified %d, active %d: everyone must be told", pending, notified, active)
	}
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'email' AND status = 'failed'`).Scan(&emailsFailed)
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice l JOIN notice m ON m.account_id = l.account_id
		WHERE l.channel = 'letter' AND l.status = 'printed' AND m.channel = 'email' AND m.status = 'failed'`).Scan(&lettersFor550)
	if emailsFailed == 0 || lettersFor550 != emailsFailed {
		t.Fatalf("%d failed emails, %d fallback letters: every failed email needs a letter", emailsFailed, lettersFor550)
	}
	// Exactly one notice reached each person: no duplicate Message-ID.
	seen := map[string]bool{}
	for _, raw := range e.sink.Messages() {
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		id := m.Header.Get("Message-Id")
		if seen[id] {
			t.Fatalf("message %s sent twice", id)
		}
		seen[id] = true
		body, _ := io.ReadAll(m.Body)
		if bytes.Contains(bytes.ToLower(body), []byte("href")) {
			t.Fatal("a notice contains a link")
		}
	}
	var sent int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'email' AND status = 'sent'`).Scan(&sent)
	if int64(len(seen)) != sent {
		t.Fatalf("%d messages reached the server, %d recorded sent", len(seen), sent)
	}
	// Every notice's deadline is the account's; letters print theirs.
	var mismatched int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM account a JOIN notice n ON n.account_id = a.id
		WHERE n.status IN ('sent', 'printed') AND n.kind = 'opposition' AND a.state = 'notified' AND n.deadline <> a.deadline
		  AND NOT EXISTS (SELECT 1 FROM notice l WHERE l.account_id = a.id AND l.channel = 'letter' AND l.id > n.id)`).Scan(&mismatched)
	if mismatched != 0 {
		t.Fatalf("%d accounts whose deadline is not their notice's", mismatched)
	}
	checkNoPlaintextCodes(t, e)
	checkLetterPDF(t, e)
	checkWorkerMetrics(t, e, reg, sent, emailsFailed)
}

// checkWorkerMetrics holds the worker's own measures against what the
// database says was done.
func checkWorkerMetrics(t *testing.T, e *env, reg *prometheus.Registry, sent, failed int64) {
	t.Helper()
	var letters int64
	e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notice WHERE channel = 'letter' AND batch_id IS NOT NULL`).Scan(&letters)
	got := promtest.Values(t, reg)
	for key, want := range map[string]float64{
		"ens_emails_total/accepted":  float64(sent),
		"ens_letters_rendered_total": float64(letters),
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if n := got["ens_emails_total/permanent"] + got["ens_emails_total/exhausted"]; n != float64(failed) {
		t.Errorf("emails permanent+exhausted = %v, want the %d failed emails", n, failed)
	}
	if got["ens_emails_total/temporary"] == 0 {
		t.Error("no temporary refusal counted, but some recipients were always busy")
	}
	for _, key := range []string{"ens_job_duration_seconds/notify_chunk/completed", "ens_job_duration_seconds/notify_chunk/failed",
		"ens_job_duration_seconds/render_letters/completed", "ens_job_queue_latency_seconds/notify_chunk"} {
		if got[key] == 0 {
			t.Errorf("%s: no job observed", key)
		}
	}
}

// checkNoPlaintextCodes dumps every table and River job and searches it for
// the codes that were sent.
func checkNoPlaintextCodes(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT id FROM account`)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := pgx.CollectRows(rows, pgx.RowTo[int64])
	var dump strings.Builder
	trows, _ := e.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	tables, _ := pgx.CollectRows(trows, pgx.RowTo[string])
	for _, tbl := range tables {
		r, err := e.pool.Query(ctx, fmt.Sprintf(`SELECT row_to_json(x)::text FROM %s x`, pgx.Identifier{tbl}.Sanitize()))
		if err != nil {
			t.Fatal(err)
		}
		lines, _ := pgx.CollectRows(r, pgx.RowTo[string])
		dump.WriteString(strings.Join(lines, "\n"))
	}
	text := strings.ToUpper(dump.String())
	for _, id := range ids {
		c := testKey.Derive(id)
		if strings.Contains(text, string(c)) || strings.Contains(text, c.String()) {
			t.Fatalf("the code of account %d is stored in clear", id)
		}
	}
}

// checkLetterPDF extracts a letter's text and checks what a person reads.
func checkLetterPDF(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	var file string
	var accountID int64
	var first, last string
	err := e.pool.QueryRow(ctx, `SELECT b.file, a.id, p.first_name, p.last_name FROM letter_batch b
		JOIN notice n ON n.batch_id = b.id JOIN account a ON a.id = n.account_id JOIN person p ON p.id = a.person_id
		WHERE n.kind = 'opposition' AND p.guardian_nir IS NULL ORDER BY n.id LIMIT 1`).Scan(&file, &accountID, &first, &last)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("letter file mode %v, want 0600", fi.Mode().Perm())
	}
	out, err := exec.Command("pdftotext", "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	text := string(out)
	for _, want := range []string{testKey.Derive(accountID).String(), first, strings.ToUpper(last), "inclus", "www.monespacesante.fr"} {
		if !strings.Contains(text, want) {
			t.Errorf("letter text lacks %q", want)
		}
	}
}

func TestCrashMidWaveLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, 400, nil)
	ctx, cancel := context.WithCancel(context.Background())
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Stop abruptly once some mail went out.
	if err := e.sink.WaitCount(ctx, 60); err != nil {
		t.Fatal(err)
	}
	cancel()
	stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	c.StopAndCancel(stopCtx)
	stop()
	before := e.sink.Count()
	e.runUntilIdle(t)

	var pending int64
	e.pool.QueryRow(context.Background(), `SELECT count(*) FROM account WHERE state = 'pending'`).Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d accounts never notified after the restart", pending)
	}
	ids := map[string]int{}
	for _, raw := range e.sink.Messages() {
		m, _ := mail.ReadMessage(bytes.NewReader(raw))
		ids[m.Header.Get("Message-Id")]++
	}
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	// A graceful stop records every accepted email: nothing repeats.
	if dups > 0 {
		t.Fatalf("%d duplicates after a stop (had sent %d)", dups, before)
	}
}

// A worker killed with SIGKILL mid-wave, then another run: nobody is missed,
// and the only messages sent twice are those in flight at the kill — at most
// one per sending goroutine — each with its same Message-ID and code.
func TestKilledWorkerResendsOnlyWhatWasInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t, 400, nil)
	dbURL, err := url.Parse(e.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	q := dbURL.Query()
	q.Set("application_name", "ens-killed-worker")
	dbURL.RawQuery = q.Encode()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$")
	cmd.Env = append(os.Environ(), "ENS_HELPER_DATABASE_URL="+dbURL.String(), "ENS_HELPER_SMTP_URL="+e.sink.URL())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.sink.WaitCount(ctx, 100); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	cmd.Process.Kill() // SIGKILL: no deferred call, no graceful stop
	cmd.Wait()         //nolint:errcheck // killed
	killedAt := e.sink.Count()
	// Nobody touches the dead worker's jobs, still "running": River's
	// rescuer, in the restarted worker, makes them available again once
	// they have run longer than RescueAfter (seconds here, about two
	// minutes in production) — the wave does not stall behind them.
	// The timeouts leave room for a loaded CI machine (-race, every package
	// at once): at 2 s, renders waiting on each other's audit lock timed out
	// again and again.
	rescued := testConfig
	rescued.RescueAfter = 12 * time.Second
	e.config = &rescued
	e.deps.ChunkTimeout, e.deps.RenderTimeout = 10*time.Second, 10*time.Second
	e.runUntilIdle(t)

	var pending int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'pending'`).Scan(&pending)
	if pending != 0 {
		t.Fatalf("after the restart: %d accounts never notified", pending)
	}
	codeRe := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`)
	codes := map[string]map[string]bool{} // Message-ID → codes seen
	for _, raw := range e.sink.Messages() {
		m, _ := mail.ReadMessage(bytes.NewReader(raw))
		id := m.Header.Get("Message-Id")
		if codes[id] == nil {
			codes[id] = map[string]bool{}
		}
		codes[id][codeRe.FindString(string(raw))] = true
	}
	dups := len(e.sink.Messages()) - len(codes)
	for id, cs := range codes {
		if len(cs) != 1 {
			t.Errorf("%s went out with different codes", id)
		}
	}
	inFlight := helperNoticeWorkers * helperConnections
	if dups > inFlight {
		t.Fatalf("%d duplicates after a kill at %d messages; at most %d were in flight", dups, killedAt, inFlight)
	}
	t.Logf("killed after %d messages: %d duplicate(s), each with its same Message-ID and code", killedAt, dups)
}

const (
	helperNoticeWorkers = 8 // jobs.Config's default
	helperConnections   = 3
)

// TestHelperWorkerProcess is the worker TestKilledWorkerResendsOnlyWhatWasInFlight
// kills; it runs only as that test's subprocess.
func TestHelperWorkerProcess(t *testing.T) {
	url := os.Getenv("ENS_HELPER_DATABASE_URL")
	if url == "" {
		t.Skip("a subprocess of TestKilledWorkerResendsOnlyWhatWasInFlight")
	}
	ctx := context.Background()
	pool, err := provisioning.OpenPool(ctx, url, 16)
	if err != nil {
		t.Fatal(err)
	}
	mailer, err := notify.NewMailer(notify.SMTPConfig{URL: os.Getenv("ENS_HELPER_SMTP_URL"), Connections: helperConnections, Key: testKey.MailKey()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig
	cfg.NoticeWorkers = helperNoticeWorkers
	c, err := jobs.NewClient(testDeps(t, pool, mailer), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

func TestBounceSwitchesToLetterWithItsPrintedDeadline(t *testing.T) {
	t.Parallel()
	e := setup(t, 60, nil)
	e.runUntilIdle(t)
	ctx := context.Background()
	var noticeID, accountID int64
	var emailDeadline time.Time
	err := e.pool.QueryRow(ctx, `SELECT n.id, n.account_id, a.deadline FROM notice n JOIN account a ON a.id = n.account_id
		WHERE n.channel = 'email' AND n.status = 'sent' AND n.kind = 'opposition' ORDER BY n.id LIMIT 1`).Scan(&noticeID, &accountID, &emailDeadline)
	if err != nil {
		t.Fatal(err)
	}
	// The report comes back to the notice's VERP address, naming the
	// address the email went to; a second one names somebody else.
	var to string
	for _, raw := range e.sink.Messages() {
		if m, _ := mail.ReadMessage(bytes.NewReader(raw)); m.Header.Get("Message-Id") == "<"+e.deps.Mailer.MessageID(noticeID)+">" {
			to = m.Header.Get("To")
		}
	}
	addr, err := mail.ParseAddress(to)
	if err != nil {
		t.Fatalf("the notice's email: %v", err)
	}
	dsn := func(final string) string {
		return fmt.Sprintf("From: MAILER-DAEMON@example.fr\r\nTo: %s\r\nSubject: Undelivered\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"+
			"--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"+
			"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.fr\r\n\r\n"+
			"Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"+
			"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <%s>\r\nSubject: x\r\n\r\n--B--\r\n",
			e.deps.Mailer.BounceAddress(noticeID), final, e.deps.Mailer.MessageID(noticeID))
	}
	box := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.Mkdir(box+"/"+sub, 0o700) //nolint:errcheck
	}
	os.WriteFile(box+"/new/1.dsn", []byte(dsn("somebody-else@example.fr")), 0o600) //nolint:errcheck
	os.WriteFile(box+"/new/2.dsn", []byte(dsn(addr.Address)), 0o600)               //nolint:errcheck
	c := e.ingest(t, box, "")
	if c.Messages != 2 || c.Parsed != 1 || c.Permanent != 1 || c.NotOurs != 1 || c.Letters != 1 {
		t.Fatalf("first reading: %+v", c)
	}
	// Read once: the Maildir's messages are flagged seen; an .eml copy read
	// again switches nobody twice.
	if c = e.ingest(t, box, ""); c.Messages != 0 {
		t.Fatalf("second reading of the Maildir: %+v", c)
	}
	emls := t.TempDir()
	os.WriteFile(emls+"/2.eml", []byte(dsn(addr.Address)), 0o600) //nolint:errcheck
	if c = e.ingest(t, emls, ""); c.Permanent != 1 || c.Letters != 0 {
		t.Fatalf("the same report again: %+v", c)
	}
	e.deps.PostDelay = 5 * 24 * time.Hour
	e.runUntilIdle(t)
	var letters int
	var newDeadline, printed time.Time
	e.pool.QueryRow(ctx, `SELECT count(*), max(n.deadline), max(a.deadline) FROM notice n JOIN account a ON a.id = n.account_id
		WHERE n.account_id = $1 AND n.channel = 'letter' AND n.status = 'printed'`, accountID).Scan(&letters, &printed, &newDeadline)
	if letters != 1 {
		t.Fatalf("%d letters after the bounce, want 1", letters)
	}
	if !newDeadline.Equal(printed) || !newDeadline.After(emailDeadline) {
		t.Fatalf("account deadline %v, letter printed %v, email said %v", newDeadline, printed, emailDeadline)
	}
}

// ingest reads the bounce mailbox at path as ens bounces ingest does, for
// mail sent from from (empty: the default sender).
func (e *env) ingest(t *testing.T, path, from string) jobs.BounceCounts {
	t.Helper()
	reader, err := notify.NewBounceReader(testKey.MailKey(), "", from)
	if err != nil {
		t.Fatal(err)
	}
	ins, _ := jobs.NewInsertClient(e.pool)
	c, err := jobs.IngestBounces(context.Background(), testdb.Store(e.pool), reader, path, jobs.LetterQueuer(ins), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExtensionTellsPeopleTheirNewDeadline(t *testing.T) {
	t.Parallel()
	e := setup(t, 80, nil)
	e.runUntilIdle(t)
	ctx := context.Background()
	before := e.sink.Count()
	until := time.Now().AddDate(0, 3, 0)
	n, err := wave.Extend(ctx, testdb.Store(e.pool), "w1", until, "olga")
	if err != nil || n == 0 {
		t.Fatalf("extend: %d %v", n, err)
	}
	if _, err := wave.Extend(ctx, testdb.Store(e.pool), "w1", until.AddDate(0, 0, -1), "olga"); err == nil {
		t.Fatal("an extension that shortens the window was accepted")
	}
	ins, _ := jobs.NewInsertClient(e.pool)
	if _, err := ins.Insert(ctx, jobs.SendExtensionsArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	e.runUntilIdle(t)
	want := time.Date(until.Year(), until.Month(), until.Day(), 23, 59, 59, 0, provisioning.Paris)
	var wrong, extensions, pending int64
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE deadline <> $1) FROM account WHERE state IN ('notified', 'opposed')`, want).Scan(&wrong)
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status IN ('sent', 'printed')), count(*) FILTER (WHERE status = 'pending')
		FROM notice WHERE kind = 'extension'`).Scan(&extensions, &pending)
	if wrong != 0 || extensions != n || pending != 0 {
		t.Fatalf("%d deadlines not moved, %d extension notices sent of %d, %d pending", wrong, extensions, n, pending)
	}
	var emailed int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE kind = 'extension' AND channel = 'email'`).Scan(&emailed)
	if e.sink.Count()-before != emailed {
		t.Fatalf("%d extension emails reached the server, %d recorded", e.sink.Count()-before, emailed)
	}
	for _, raw := range e.sink.Messages()[before:] {
		if !bytes.Contains(raw, []byte("prolong")) {
			t.Fatal("an extension email does not say the window was extended")
		}
	}
}

// A long-running worker sweeps ended windows on its own: the periodic sweep
// is queued when the worker starts and every SweepInterval after. Before, its
// insert options were refused by River's periodic enqueuer (a unique sweep
// must be unique while running too), so only `--until-idle` runs and the CLI
// ever activated anyone.
func TestLongRunningWorkerClosesEndedWindows(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, 1) // by email: letters wait for the printer's acknowledgement
	e.runUntilIdle(t)
	ctx := context.Background()
	var notified int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'notified'`).Scan(&notified)
	if notified == 0 {
		t.Fatal("nobody notified")
	}
	later := time.Now().AddDate(0, 0, 60)
	e.deps.Clock = func() time.Time { return later }
	cfg := testConfig
	cfg.Periodic, cfg.SweepInterval = true, 50*time.Millisecond
	c, err := jobs.NewClient(e.deps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The first sweep, queued as the worker starts, closes every window.
	done, stop := c.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer stop()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-done:
			if ev.Job.Kind != (jobs.CloseWindowsArgs{}).Kind() {
				continue
			}
			var left int64
			e.pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'notified'`).Scan(&left)
			if ev.Kind != river.EventKindJobCompleted || left != 0 {
				t.Fatalf("the sweep ended %s and left %d of %d accounts notified 60 days on", ev.Kind, left, notified)
			}
			return
		case <-timeout:
			e.dumpJobs(t)
			t.Fatalf("no window sweep ran in 30 s: the %d accounts notified 60 days on were never activated", notified)
		}
	}
}
