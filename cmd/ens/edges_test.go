package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/promtest"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
)

// person is one row of the CLI's database the edge tests act on.
type person struct {
	id, account int64
	nir, birth  string
}

// pick reads the first person matching where (SQL on person p and account a,
// left-joined), ordered by person id.
func (c *cli) pick(where string, args ...any) person {
	c.t.Helper()
	var p person
	var acc *int64
	err := c.db().QueryRow(context.Background(), `SELECT p.id, a.id, p.nir, p.birth_date::text FROM person p
		LEFT JOIN account a ON a.person_id = p.id WHERE `+where+` ORDER BY p.id LIMIT 1`, args...).Scan(&p.id, &acc, &p.nir, &p.birth)
	if err != nil {
		c.t.Fatalf("picking a person (%s): %v", where, err)
	}
	if acc != nil {
		p.account = *acc
	}
	return p
}

// agentOptout records a refusal through an agent after an identity check,
// the NIR on stdin.
func (c *cli) agentOptout(p person, extra ...string) (int, string, string) {
	return c.runStdin(p.nir+"\n", append([]string{"optout", "--nir", "-", "--birth-date", p.birth, "--operator", "olga",
		"--identity-checked-by", "bob"}, extra...)...)
}

func (c *cli) state(account int64) string {
	c.t.Helper()
	var s string
	if err := c.db().QueryRow(context.Background(), `SELECT state FROM account WHERE id = $1`, account).Scan(&s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// A refusal is possible in every state before activation, through an agent
// after an identity check: a person no wave has selected yet (recorded on
// the person: no later wave selects them), a pending one, an unreachable one
// — exactly the people who call because the letter never came. Before,
// each was answered "no account matches".
func TestAgentRefusalInEveryStateBeforeActivation(t *testing.T) {
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("40", "23")
	early := c.pick(`p.death_date IS NULL AND p.birth_date < '2000-01-01'`)
	code, out, errs := c.agentOptout(early)
	if code != 0 || !strings.Contains(out, "before any wave") {
		t.Fatalf("a person in no wave: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := c.runStdin(early.nir+"\n", "account", "show"); code != 0 || !strings.Contains(out, "opposed") {
		t.Fatalf("account show of a person who refused before any wave: exit %d\n%s", code, out)
	}
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	if p := c.pick(`p.id = $1`, early.id); p.account != 0 {
		t.Fatalf("the wave created an account for a person who had refused")
	}
	pending := c.pick(`a.state = 'pending'`)
	if code, out, errs := c.agentOptout(pending); code != 0 || !strings.Contains(out, "opposition recorded") || c.state(pending.account) != "opposed" {
		t.Fatalf("a pending person: exit %d, state %s\n%s%s", code, c.state(pending.account), out, errs)
	}
	lost := c.pick(`a.state = 'pending' AND p.id <> $1`, pending.id)
	if _, err := c.db().Exec(context.Background(), `UPDATE account SET state = 'unreachable', unreachable_reason = 'letter returned',
		unreachable_at = now() WHERE id = $1`, lost.account); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := c.agentOptout(lost); code != 0 || c.state(lost.account) != "opposed" {
		t.Fatalf("an unreachable person: exit %d, state %s\n%s%s", code, c.state(lost.account), out, errs)
	}
	if code, out, _ := c.agentOptout(lost); code != 0 || !strings.Contains(out, "already opposed") {
		t.Fatalf("the same refusal twice: exit %d\n%s", code, out)
	}
	// A reinstatement needs the birth date and an identity check, as the
	// opposition did (before: the NIR alone gave an account to someone who
	// refused it).
	if code, _, errs := c.runStdin(lost.nir+"\n", "account", "reinstate", "--operator", "olga"); code != 2 || !strings.Contains(errs, "identity-checked-by") {
		t.Fatalf("a reinstatement on the NIR alone: exit %d\n%s", code, errs)
	}
	if code, _, errs := c.runStdin(lost.nir+"\n", "account", "reinstate", "--operator", "olga", "--identity-checked-by", "bob",
		"--birth-date", "1901-01-01"); code != 2 || !strings.Contains(errs, "no account matches") || c.state(lost.account) != "opposed" {
		t.Fatalf("a reinstatement with another birth date: exit %d, state %s\n%s", code, c.state(lost.account), errs)
	}
	if code, out, errs := c.runStdin(lost.nir+"\n", "account", "reinstate", "--operator", "olga", "--identity-checked-by", "bob",
		"--birth-date", lost.birth); code != 0 || c.state(lost.account) != "active" {
		t.Fatalf("a reinstatement after an identity check: exit %d, state %s\n%s%s", code, c.state(lost.account), out, errs)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 {
		t.Fatalf("reconcile after refusals before any notice: exit %d\n%s%s", code, out, errs)
	}
	// Reversible by the same path: the pending person's account waits for
	// its notice again, and a later wave selects the person who had refused
	// before any wave.
	if code, out, errs := c.agentOptout(pending, "--undo"); code != 0 || !strings.Contains(out, "withdrawn") || c.state(pending.account) != "pending" {
		t.Fatalf("withdrawing a refusal made before any notice: exit %d, state %s\n%s%s", code, c.state(pending.account), out, errs)
	}
	if code, out, errs := c.agentOptout(early, "--undo"); code != 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("withdrawing a refusal made before any wave: exit %d\n%s%s", code, out, errs)
	}
	var res struct {
		Created int `json:"created"`
	}
	c.json(&res, "wave", "launch", "w2", "--json")
	if p := c.pick(`p.id = $1`, early.id); res.Created != 1 || p.account == 0 {
		t.Fatalf("after the refusal was withdrawn, a later wave created %d accounts (the person's: %d)", res.Created, p.account)
	}
}

// notifyWithDeadline makes the pending account of p notified with its
// opposition email sent, and its deadline at the end of day (Paris), as a
// wave sent days ago would have left it; it returns p's code.
func (c *cli) notifyWithDeadline(key optout.Key, p person, day time.Time) string {
	c.t.Helper()
	code := key.Derive(p.account)
	deadline := provisioning.EndOfDay(day)
	sent := deadline.AddDate(0, 0, -42)
	ctx := context.Background()
	if _, err := c.db().Exec(ctx, `UPDATE account SET state = 'notified', notified_at = $2, deadline = $3, code_hash = $4 WHERE id = $1`,
		p.account, sent, deadline, key.LookupHash(code)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.db().Exec(ctx, `INSERT INTO notice (account_id, kind, channel, status, sent_at, deadline, seq)
		VALUES ($1, 'opposition', 'email', 'sent', $2, $3, 0)`, p.account, sent, deadline); err != nil {
		c.t.Fatal(err)
	}
	return code.String()
}

// Nobody is activated the moment the window closes: during the grace
// (ENS_ACTIVATION_GRACE) a refusal postmarked by the deadline is honoured as
// on time; after it, the window activates, and a refusal postmarked in time
// closes the account as opposed late — purged within three months, never
// the ten-year archive. Before, the account was active the instant the
// window closed, and the refusal answered "activated before this
// opposition arrived … delete it".
func TestPostmarkedRefusalReadAfterTheDeadline(t *testing.T) {
	mailSink(t, mailsink.Options{})
	key, err := optout.ParseKey(os.Getenv("ENS_CODE_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("30", "29")
	if code, _, errs := c.run("wave", "launch", "w", "--limit", "3"); code != 0 {
		t.Fatal(errs)
	}
	lastDay := time.Now().In(provisioning.Paris).AddDate(0, 0, -3)
	inGrace := c.pick(`a.state = 'pending'`)
	inGraceCode := c.notifyWithDeadline(key, inGrace, lastDay)
	late := c.pick(`a.state = 'pending' AND p.id <> $1`, inGrace.id)
	lateCode := c.notifyWithDeadline(key, late, lastDay)
	if code, out, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatalf("worker: exit %d\n%s%s", code, out, errs)
	}
	if s := c.state(inGrace.account); s != "notified" {
		t.Fatalf("three days after its deadline, within the grace, the account is %s; want notified", s)
	}
	postmark := lastDay.Format(time.DateOnly)
	code, out, errs := c.runStdin(inGraceCode+"\n", "optout", "--code-stdin", "--birth-date", inGrace.birth, "--operator", "olga", "--received-on", postmark)
	if code != 0 || !strings.Contains(out, "opposition recorded") || c.state(inGrace.account) != "opposed" {
		t.Fatalf("a refusal postmarked on the last day, read during the grace: exit %d, %s\n%s%s", code, c.state(inGrace.account), out, errs)
	}

	t.Setenv("ENS_ACTIVATION_GRACE", "0s")
	if code, out, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatalf("worker: exit %d\n%s%s", code, out, errs)
	}
	if s := c.state(late.account); s != "active" {
		t.Fatalf("without a grace the window activates: %s", s)
	}
	code, out, errs = c.runStdin(lateCode+"\n", "optout", "--code-stdin", "--birth-date", late.birth, "--operator", "olga", "--received-on", postmark)
	if code != 0 || !strings.Contains(out, "opposed late") {
		t.Fatalf("a refusal postmarked in time, read after the activation: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = c.runStdin(late.nir+"\n", "account", "show")
	if code != 0 || !strings.Contains(out, "opposed_late, express") || c.state(late.account) != "archived" {
		t.Fatalf("the account opposed late: exit %d, state %s\n%s", code, c.state(late.account), out)
	}
	var purgeDue time.Time
	if err := c.db().QueryRow(context.Background(), `SELECT retain_until FROM archive WHERE account_id = $1`, late.account).Scan(&purgeDue); err != nil {
		t.Fatal(err)
	}
	if purgeDue.After(time.Now().AddDate(0, 3, 0)) {
		t.Fatalf("an account opposed late is kept until %s; want its purge within three months", purgeDue)
	}
	// A postmark earlier than the notice that carried the code cannot be.
	other := c.pick(`a.state = 'notified' AND a.deadline > now()`)
	before := time.Now().AddDate(0, -3, 0).Format(time.DateOnly)
	if code, _, errs := c.runStdin(key.Derive(other.account).String()+"\n", "optout", "--code-stdin", "--birth-date", other.birth,
		"--operator", "olga", "--received-on", before); code != 2 || !strings.Contains(errs, "postmark is earlier") {
		t.Fatalf("a postmark before the notice existed: exit %d\n%s", code, errs)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errs)
	}
}

// A person with only an email has no postal address, hence no department of
// residence: the caisse (organisme d'affiliation) places them in a
// department's wave. Before, no department wave ever selected them, and the
// registry had no column for it.
func TestCaisseWave(t *testing.T) {
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "caisse.csv")
	rows := "nir,last_name,first_name,birth_date,email,address_line4,postcode,city,caisse\n" +
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,311\n" + // email only, caisse of Haute-Garonne
		"284052A32102552,Ñúñez,Gaëlle,1984-05-02,gaelle@example.fr,,,,2A1\n" + // Corse-du-Sud
		"295109912611193,Bordeaux,Jean,1995-10-01,jean@example.fr,,,,974\n" + // La Réunion
		"284052B32102579,Santoni,Marc,1984-05-02,marc@example.fr,3 rue du Port,31000,Toulouse,2B1\n" // residence first
	os.WriteFile(reg, []byte(rows), 0o600) //nolint:errcheck
	var imp struct {
		Accepted int64 `json:"accepted"`
	}
	c.json(&imp, "registry", "import", reg, "--json")
	if imp.Accepted != 4 {
		t.Fatalf("registry with a caisse column: %+v", imp)
	}
	for _, tc := range []struct {
		departments string
		want        int
	}{{"31", 2}, {"2A", 1}, {"974", 1}, {"2B", 0}} {
		var res struct {
			Created int `json:"created"`
		}
		c.json(&res, "wave", "launch", "w-"+tc.departments, "--departments", tc.departments, "--json")
		if res.Created != tc.want {
			t.Errorf("wave --departments %s: %d accounts, want %d", tc.departments, res.Created, tc.want)
		}
	}
	os.WriteFile(reg, []byte("nir,last_name,first_name,birth_date,email,caisse\n"+ //nolint:errcheck
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,X1\n"), 0o600)
	var again struct {
		Warnings map[string]int64 `json:"warnings"`
	}
	c.json(&again, "registry", "import", reg, "--json")
	if again.Warnings["caisse_invalid"] != 1 {
		t.Fatalf("a caisse that is no organisme's code: %+v, want the warning caisse_invalid", again)
	}
}

// The person's day: a deadline printed "jusqu'au 5 mai inclus" lasts to
// 23:59:59 that day where they live, never less than in Paris.
func TestLocalDeadlines(t *testing.T) {
	t.Parallel()
	day := time.Date(2027, 5, 5, 12, 0, 0, 0, provisioning.Paris)
	printed := provisioning.EndOfDay(day)
	for _, tc := range []struct {
		department string
		localEnd   time.Time
	}{
		{"75", printed},
		{"971", time.Date(2027, 5, 5, 23, 59, 59, 0, provisioning.TimeZone("971"))},
		{"973", time.Date(2027, 5, 5, 23, 59, 59, 0, provisioning.TimeZone("973"))},
		{"974", printed}, // ahead of Paris: never before Paris's end of day
		{"976", printed},
		{"987", time.Date(2027, 5, 5, 23, 59, 59, 0, provisioning.TimeZone("987"))},
	} {
		t.Run(tc.department, func(t *testing.T) {
			if got := provisioning.LocalDeadline(printed, tc.department); !got.Equal(tc.localEnd) {
				t.Fatalf("deadline for %s: got %s, want %s", tc.department, got, tc.localEnd)
			}
		})
	}
	rehearsal := time.Date(2027, 5, 5, 14, 3, 0, 0, provisioning.Paris)
	if got := provisioning.LocalDeadline(rehearsal, "971"); !got.Equal(rehearsal) {
		t.Fatalf("a rehearsal's deadline moved: %s", got)
	}
}

// A person asking what is held about them (RGPD art. 15) is answered without
// SQL: registry data, every state with its time, every notice, their
// oppositions, the audit events, the retention — never the code, and the
// access itself is audited. Before, there was no such command.
func TestAccountExportHoldsEverythingButTheCode(t *testing.T) {
	mailSink(t, mailsink.Options{})
	key, err := optout.ParseKey(os.Getenv("ENS_CODE_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("15", "37")
	for _, args := range [][]string{{"wave", "launch", "w"}, {"worker", "--until-idle"}} {
		if code, out, errs := c.run(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	p := c.pick(`a.state = 'notified'`)
	code := key.Derive(p.account).String()
	if st, out, errs := c.runStdin(code+"\n", "optout", "--code-stdin", "--birth-date", p.birth, "--operator", "olga"); st != 0 {
		t.Fatalf("optout: %d\n%s%s", st, out, errs)
	}
	st, out, errs := c.runStdin(p.nir+"\n", "account", "export", "--json", "--operator", "dpo")
	if st != 0 {
		t.Fatalf("account export: exit %d\n%s", st, errs)
	}
	var x struct {
		Person      map[string]any   `json:"registry_data"`
		States      []map[string]any `json:"states"`
		Notices     []map[string]any `json:"notices"`
		Oppositions []map[string]any `json:"oppositions"`
		Events      []map[string]any `json:"audit_events"`
		Retention   []string         `json:"retention"`
	}
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatal(err)
	}
	if x.Person["nir"] != p.nir || len(x.States) < 3 || len(x.Notices) == 0 || len(x.Oppositions) != 1 || len(x.Events) < 2 || len(x.Retention) == 0 {
		t.Fatalf("export: %d states, %d notices, %d oppositions, %d events, retention %v; registry %v",
			len(x.States), len(x.Notices), len(x.Oppositions), len(x.Events), x.Retention, x.Person)
	}
	bare := strings.ReplaceAll(code, "-", "")
	if strings.Contains(out, code) || strings.Contains(out, bare) {
		t.Fatal("the export holds the opposition code")
	}
	var audited int
	if err := c.db().QueryRow(context.Background(), `SELECT count(*) FROM audit_event WHERE action = 'person.data_exported' AND actor = 'dpo'`).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("the access was audited %d times (%v)", audited, err)
	}
	if st, text, _ := c.runStdin(p.nir+"\n", "account", "export"); st != 0 || !strings.Contains(text, "Oppositions") || strings.Contains(text, code) {
		t.Fatalf("account export as text: exit %d\n%s", st, text)
	}
	// As a PDF for the person, readable by its owner only: the same
	// sections, the registry's name, never the code.
	pdf := filepath.Join(c.dir, "export.pdf")
	if st, out, errs := c.runStdin(p.nir+"\n", "account", "export", "--pdf", pdf); st != 0 {
		t.Fatalf("account export --pdf: exit %d\n%s%s", st, out, errs)
	}
	if fi, err := os.Stat(pdf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the PDF export: %v, mode %v; want 0600", err, fi)
	}
	if _, err := exec.LookPath("pdftotext"); err == nil {
		text, err := exec.Command("pdftotext", "-enc", "UTF-8", pdf, "-").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Données détenues par Mon espace santé", "Oppositions", "Journal d'audit", "Conservation", x.Person["last_name"].(string)} {
			if !strings.Contains(string(text), want) {
				t.Errorf("the PDF export lacks %q", want)
			}
		}
		if strings.Contains(string(text), code) || strings.Contains(string(text), bare) {
			t.Fatal("the PDF export holds the opposition code")
		}
	}
}

// A long-running worker answers an orchestrator's probes: /healthz while its
// job client runs, /readyz while the database answers, and its own
// /metrics. Before, nothing told a stuck worker from a busy one.
func TestWorkerAnswersProbes(t *testing.T) {
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var logs lockedBuffer
	go func() {
		var out bytes.Buffer
		done <- Run(ctx, []string{"--database-url", c.url, "--var-dir", c.dir, "worker", "--health-addr", addr}, strings.NewReader(""), &out, &logs)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _ := get("/healthz"); st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("/healthz never answered 200\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, body := get("/readyz"); st != http.StatusOK {
		t.Fatalf("/readyz: %d %s", st, body)
	}
	if st, body := get("/metrics"); st != http.StatusOK || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, `ens_emails_total{outcome="accepted"} 0`) {
		t.Fatalf("/metrics: %d\n%s", st, body)
	}
	// The window sweep runs when the worker starts: its duration is measured.
	for {
		_, body := get("/metrics")
		if strings.Contains(body, `ens_job_duration_seconds_count{kind="close_windows",outcome="completed"} 1`) {
			promtest.Lint(t, body)
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("/metrics never showed the window sweep's duration\n%s\n%s", body, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("the worker stopped with %d\n%s", code, logs.String())
	}
}

// A provisional number becoming final keeps one person and one account:
// the row's replaces_nir moves the person, account and history to the new
// number, sends nothing again, and the feed says so; the old number answers
// "replaced"; should the old number come back as a person of its own,
// reconcile flags the second account. Before, the final number became a
// second person with a second account and code, and reconcile was clean.
func TestReplacedNumberKeepsOnePersonOneAccount(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	provisional, final := fixtures.ValidNIR(7, 84, 5, 75, 123), fixtures.ValidNIR(2, 84, 5, 75, 124)
	reg := filepath.Join(c.dir, "reg.csv")
	write := func(rows string) {
		os.WriteFile(reg, []byte("nir,last_name,first_name,birth_date,email,replaces_nir\n"+rows), 0o600) //nolint:errcheck
	}
	write(provisional + ",Durand,Léa,1984-05-02,lea@example.fr,\n")
	c.json(&struct{}{}, "registry", "import", reg, "--json")
	for _, args := range [][]string{{"wave", "launch", "w"}, {"worker", "--until-idle"}} {
		if code, out, errs := c.run(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	before := c.pick(`p.nir = $1`, provisional)
	var notices int
	c.db().QueryRow(context.Background(), `SELECT count(*) FROM notice`).Scan(&notices) //nolint:errcheck
	write(final + ",Durand,Léa,1984-05-02,lea@example.fr," + provisional + "\n")
	var res struct {
		Inserted int              `json:"inserted"`
		Replaced []map[string]any `json:"replaced"`
	}
	c.json(&res, "registry", "import", reg, "--json")
	if res.Inserted != 0 || len(res.Replaced) != 1 {
		t.Fatalf("the final number's row: %+v; want the person renumbered, nobody inserted", res)
	}
	after := c.pick(`p.nir = $1`, final)
	if after.account != before.account || after.id != before.id {
		t.Fatalf("account %d (person %d) under the provisional number, %d (%d) under the final one: want the same", before.account, before.id, after.account, after.id)
	}
	if code, out, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatalf("worker: %d\n%s%s", code, out, errs)
	}
	var again int
	c.db().QueryRow(context.Background(), `SELECT count(*) FROM notice`).Scan(&again) //nolint:errcheck
	if again != notices {
		t.Fatalf("%d notices after the number changed, %d before: something was sent again", again, notices)
	}
	if code, _, errs := c.runStdin(provisional+"\n", "account", "show"); code != 2 || !strings.Contains(errs, "was replaced") {
		t.Fatalf("account show under the old number: exit %d %s", code, errs)
	}
	code, out, _ := c.run("changes", "--after", "0")
	if code != 0 || !strings.Contains(out, `"change":"replaced"`) || !strings.Contains(out, `"replaced_nir":"`+provisional+`"`) {
		t.Fatalf("the feed after the number changed: %s", out)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errs)
	}
	// The old number comes back as its own row: a second person, whose
	// account reconcile flags.
	write(provisional + ",Durand,Léa,1984-05-02,lea@example.fr,\n")
	var dup struct {
		Possible []map[string]any `json:"possible_duplicates"`
	}
	c.json(&dup, "registry", "import", reg, "--json")
	if len(dup.Possible) != 1 {
		t.Fatalf("the old number imported again: %+v; want it listed for review", dup)
	}
	if code, _, errs := c.run("wave", "launch", "w2"); code != 0 {
		t.Fatal(errs)
	}
	code, out, _ = c.run("reconcile", "w2", "--json")
	var rec struct {
		Checks []struct {
			Name  string `json:"name"`
			Count int64  `json:"count"`
		} `json:"checks"`
	}
	json.Unmarshal([]byte(out), &rec) //nolint:errcheck
	flagged := int64(-1)
	for _, ch := range rec.Checks {
		if ch.Name == "replaced_number_has_account" {
			flagged = ch.Count
		}
	}
	if code != exitAnomalies || flagged != 1 {
		t.Fatalf("reconcile with a second account under a replaced number: exit %d, flagged %d\n%s", code, flagged, out)
	}
}

// Continuous enrolment takes the people imported after it was turned on —
// never the national campaign's backlog — at most ENS_ENROL_DAILY_CAP a
// day, and says beforehand what it would do. Before, its first run enrolled
// everyone not yet in a wave, at once.
func TestEnrolmentTakesNewcomersUnderADailyCap(t *testing.T) {
	t.Setenv("ENS_CODE_KEY", strings.Repeat("ab", 32))
	t.Setenv("ENS_ENROL_DAILY_CAP", "4")
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("30", "41") // the backlog: people no wave has reached
	if code, out, errs := c.run("enrol", "--enable"); code != 0 {
		t.Fatalf("enrol --enable: %d\n%s%s", code, out, errs)
	}
	var res struct {
		Created int `json:"created"`
	}
	c.json(&res, "enrol", "--json")
	if res.Created != 0 {
		t.Fatalf("the first run enrolled %d people of the backlog", res.Created)
	}
	c.importFixture("10", "43") // newcomers
	var dry struct {
		Accounts int `json:"accounts"`
	}
	c.json(&dry, "enrol", "--dry-run", "--json")
	if dry.Accounts == 0 {
		t.Fatal("the dry run sees no newcomer")
	}
	c.json(&res, "enrol", "--json")
	if res.Created != 4 {
		t.Fatalf("a run under a daily cap of 4 created %d accounts", res.Created)
	}
	c.json(&res, "enrol", "--json")
	if res.Created != 0 {
		t.Fatalf("a second run the same day created %d accounts past the cap", res.Created)
	}
	var w string
	c.db().QueryRow(context.Background(), `SELECT name FROM wave WHERE name LIKE 'enrol-%'`).Scan(&w) //nolint:errcheck
	if code, out, errs := c.run("reconcile", w); code != 0 {
		t.Fatalf("reconcile %s after a capped run: exit %d\n%s%s", w, code, out, errs)
	}
}
