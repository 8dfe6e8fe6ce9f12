package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/postfix"
	"github.com/ens-sante/ens/notify"
)

// Through Debian's Postfix on loopback: mail to ok.test is delivered, to
// reject.test refused at RCPT, to bounce.test bounced by Postfix itself,
// to defer.test deferred until it expires. Postfix sends its own reports
// (RFC 6533 for this SMTPUTF8 mail) to each notice's VERP address, a
// Maildir; ens bounces ingest on it switches exactly the failed people to
// letters. (Before: ingest read no Maildir file, and recognised none of
// Postfix's reports once renamed .eml.)
func TestPostfixBouncesSwitchExactlyTheFailedToLetters(t *testing.T) {
	t.Parallel()
	pf := postfix.Start(t)
	e := setup(t, 300, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Everyone with an email gets one at a test domain, by person id.
	if _, err := e.pool.Exec(ctx, `UPDATE person SET email = 'p' || id || '@' ||
		(ARRAY['ok.test', 'ok.test', 'reject.test', 'bounce.test', 'defer.test'])[id % 5 + 1] WHERE email IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	m, err := notify.NewMailer(notify.SMTPConfig{URL: "smtp://" + pf.Addr + "?tls=none", From: "ne-pas-repondre@ens.test",
		Key: testKey.MailKey(), Connections: 3, ProbeEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e.deps.Mailer = m
	e.runUntilIdle(t)

	var toBounce, toDefer, rejected, ok int
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE d = 'bounce.test'), count(*) FILTER (WHERE d = 'defer.test'),
		count(*) FILTER (WHERE d = 'reject.test' AND n.status = 'failed'), count(*) FILTER (WHERE d = 'ok.test' AND n.status = 'sent')
		FROM notice n, LATERAL (SELECT split_part(e.email, '@', 2) AS d FROM account a JOIN person p ON p.id = a.person_id
		  LEFT JOIN person g ON g.nir = p.guardian_nir AND p.birth_date > current_date - interval '18 years'
		  CROSS JOIN LATERAL (SELECT coalesce(g.email, p.email) AS email) e WHERE a.id = n.account_id) x
		WHERE n.channel = 'email'`).Scan(&toBounce, &toDefer, &rejected, &ok)
	if toBounce == 0 || toDefer == 0 || rejected == 0 || ok == 0 {
		t.Fatalf("the fixture lacks a domain: %d bounce, %d defer, %d rejected, %d ok", toBounce, toDefer, rejected, ok)
	}
	// Postfix bounces and expires the mail it accepted, and delivers one
	// report per message to the bounce Maildir.
	box := pf.BounceMaildir()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for countFiles(box) < toBounce+toDefer {
		select {
		case <-ctx.Done():
			t.Fatalf("%d reports in the bounce Maildir, want %d; Postfix's log:\n%s", countFiles(box), toBounce+toDefer, tail(pf.Log(), 3000))
		case <-tick.C:
		}
	}
	if got := countFiles(pf.OKMaildir()); got != ok {
		t.Fatalf("%d messages delivered to ok.test, %d recorded sent", got, ok)
	}
	global := 0
	filepath.Walk(box, func(p string, fi os.FileInfo, err error) error { //nolint:errcheck
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "message/global-delivery-status") {
				global++
			}
		}
		return nil
	})
	c := e.ingest(t, box, "ne-pas-repondre@ens.test")
	if c.Messages != toBounce+toDefer || c.Permanent != toBounce+toDefer || c.NotOurs != 0 || c.Unreadable != 0 || c.NotAReport != 0 {
		t.Fatalf("ingest: %+v; want %d permanent failures (%d bounced, %d expired)", c, toBounce+toDefer, toBounce, toDefer)
	}
	e.runUntilIdle(t)
	// Exactly the failed people have a letter; nobody delivered has one.
	var wrong, letters int
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE (l.id IS NOT NULL) <> (m.status IN ('failed', 'bounced'))),
		count(l.id) FROM notice m LEFT JOIN notice l ON l.account_id = m.account_id AND l.channel = 'letter' AND l.kind = m.kind
		WHERE m.channel = 'email'`).Scan(&wrong, &letters)
	if wrong != 0 || letters != toBounce+toDefer+rejected {
		t.Fatalf("%d people with a letter they should not have, or without one they need; %d letters for %d failed emails",
			wrong, letters, toBounce+toDefer+rejected)
	}
	t.Logf("Postfix: %d delivered, %d refused at RCPT, %d bounced, %d expired; %d of %d reports were RFC 6533",
		ok, rejected, toBounce, toDefer, global, c.Messages)
}

func countFiles(maildir string) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		es, _ := os.ReadDir(filepath.Join(maildir, sub))
		n += len(es)
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
