package main

import (
	"bytes"
	"context"
	"mime"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
)

var codeRe = regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`)

// A person who lost their code has it sent again by an agent: the same
// code, through the channel that reached them (the address on file, never
// one given on the phone), the deadline unchanged; at most once a day,
// audited with the agent's name, and `ens reconcile` accounts for it. An
// account whose window is not open gets nothing.
func TestLostCodeSentAgainThroughTheChannelOnFile(t *testing.T) {
	sink := mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "people.csv")
	os.WriteFile(reg, []byte(`nir,last_name,first_name,birth_date,email,address_line4,postcode,city
160057505600177,Martin,Paul,1960-05-10,paul@example.fr,1 rue de la Paix,75002,Paris
250037505600296,Martin,Jeanne,1950-03-02,,1 rue de la Paix,75002,Paris
155077505600361,Durand,Marc,1955-07-21,marc@example.fr,2 rue de la Paix,75002,Paris
`), 0o600)
	if code, _, errs := c.run("registry", "import", reg); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatal(errs)
	}
	type email struct{ subject, code, id string }
	emailsTo := func(addr string) []email {
		var out []email
		for _, raw := range sink.Messages() {
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if to, _ := mail.ParseAddress(m.Header.Get("To")); to.Address == addr {
				subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
				out = append(out, email{subject, codeRe.FindString(string(raw)), m.Header.Get("Message-Id")})
			}
		}
		return out
	}
	first := emailsTo("paul@example.fr")
	if len(first) != 1 || first[0].code == "" {
		t.Fatalf("Paul's first notice: %+v", first)
	}
	var before struct {
		Deadline time.Time `json:"deadline"`
	}
	c.json(&before, "account", "show", "160057505600177", "--json")

	// By email: the same code, a new message, the deadline unchanged.
	var logs lockedBuffer
	code, out := c.runLoggingStdin(&logs, "160057505600177\n", "code", "resend", "--operator", "agent-a")
	if code != 0 || !strings.Contains(out, "by email") || !strings.Contains(out, "deadline unchanged") {
		t.Fatalf("resend: exit %d: %s\n%s", code, out, logs.String())
	}
	for _, secret := range []string{"160057505600177", "paul@example.fr", first[0].code} {
		if strings.Contains(out+logs.String(), secret) {
			t.Fatalf("the resend printed or logged personal data %q:\n%s\n%s", secret, out, logs.String())
		}
	}
	if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatal(errs)
	}
	again := emailsTo("paul@example.fr")
	if len(again) != 2 || again[1].code != first[0].code || again[1].id == first[0].id || !strings.Contains(again[1].subject, "de nouveau") {
		t.Fatalf("Paul's emails after the resend: %+v", again)
	}
	var after struct {
		Deadline time.Time `json:"deadline"`
	}
	c.json(&after, "account", "show", "160057505600177", "--json")
	if !after.Deadline.Equal(before.Deadline) {
		t.Fatalf("the resend moved the deadline: %s → %s", before.Deadline, after.Deadline)
	}
	// Once a day at most.
	if code, _, errs := c.runStdin("160057505600177\n", "code", "resend", "--operator", "agent-b"); code != 2 || !strings.Contains(errs, "already re-sent 1 time") {
		t.Fatalf("a second resend the same day: exit %d: %s", code, errs)
	}

	// By letter for Jeanne, who has no email: her code, her deadline.
	if code, out, errs := c.runStdin("250037505600296\n", "code", "resend", "--operator", "agent-a"); code != 0 || !strings.Contains(out, "by letter") {
		t.Fatalf("letter resend: exit %d: %s %s", code, out, errs)
	}
	if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatal(errs)
	}
	ctx := context.Background()
	conn := c.db()
	letterText := func(kind string) string {
		var file string
		if err := conn.QueryRow(ctx, `SELECT b.file FROM letter_batch b JOIN notice n ON n.batch_id = b.id
			WHERE n.kind = $1 AND n.channel = 'letter'`, kind).Scan(&file); err != nil {
			t.Fatalf("the %s letter: %v", kind, err)
		}
		text, err := exec.Command("pdftotext", "-layout", file, "-").Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(text)
	}
	orig, resent := letterText("opposition"), letterText("resend")
	var jeanne struct {
		Deadline time.Time `json:"deadline"`
	}
	c.json(&jeanne, "account", "show", "250037505600296", "--json")
	flat := strings.Join(strings.Fields(resent), " ")
	if codeRe.FindString(resent) == "" || codeRe.FindString(resent) != codeRe.FindString(orig) ||
		!strings.Contains(flat, "de nouveau") || !strings.Contains(flat, provisioning.FrenchDate(jeanne.Deadline)) {
		t.Fatalf("the resent letter (deadline %s):\n%s\nthe first letter:\n%s", jeanne.Deadline, resent, orig)
	}

	// Marc opposes: his window is no longer one a code is sent for.
	marc := emailsTo("marc@example.fr")
	if code, _, errs := c.runStdin(marc[0].code+"\n", "optout", "--birth-date", "1955-07-21", "--operator", "agent-a"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.runStdin("155077505600361\n", "code", "resend", "--operator", "agent-a"); code != 2 || !strings.Contains(errs, "opposed") {
		t.Fatalf("resend for an opposed account: exit %d: %s", code, errs)
	}

	var audited int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_event WHERE action = 'account.code_resent' AND actor = 'agent-a'`).Scan(&audited); err != nil || audited != 2 {
		t.Fatalf("%d resends audited with the agent's name (%v), want 2", audited, err)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 || !strings.Contains(out, "resend_without_request") {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errs)
	}
	// A resend nobody asked for is an anomaly.
	if _, err := conn.Exec(ctx, `INSERT INTO notice (account_id, kind, channel, seq)
		SELECT a.id, 'resend', 'email', 9 FROM account a JOIN person p ON p.id = a.person_id WHERE p.first_name = 'Paul'`); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := c.run("reconcile", "w"); code != exitAnomalies || !strings.Contains(out, "resend_without_request") {
		t.Fatalf("reconcile after an unrequested resend: exit %d\n%s", code, out)
	}
}
