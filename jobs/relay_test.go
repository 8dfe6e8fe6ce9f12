package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/mail"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/wave"
)

// A relay that goes down mid-wave and comes back: nobody is moved to a
// letter for it, nobody's attempts move, and the wave finishes once the
// relay is back, with no duplicate beyond the messages in flight.
// (Before: five failed attempts per notice turned the emails into letters.)
func TestRelayOutagePausesWithoutLetters(t *testing.T) {
	t.Parallel()
	e := setup(t, 400, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// As ens worker does: the relay's state goes to smtp_relay, which
	// ens wave status and /metrics read.
	record := jobs.RelayRecorder(e.pool, "test-worker", slog.New(slog.DiscardHandler))
	var vainProbes atomic.Int64
	m, err := notify.NewMailer(notify.SMTPConfig{URL: e.sink.URL(), Connections: 3, Key: testKey.MailKey(), ProbeEvery: 20 * time.Millisecond,
		OnRelayChange: func(st notify.RelayState) {
			if !st.Up && strings.HasPrefix(st.Reason, "probe:") {
				vainProbes.Add(1)
			}
			record(st)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e.deps.Mailer = m
	relayShown := func() notice.RelayStatus {
		st, err := wave.GetStatus(ctx, e.pool, "w1", wave.StatusOptions{})
		if err != nil || len(st.Relays) != 1 {
			t.Fatalf("wave status: %v, relays %+v", err, st)
		}
		return st.Relays[0]
	}
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.sink.WaitCount(ctx, 40); err != nil {
		t.Fatal(err)
	}
	addr := e.sink.Addr()
	first := e.sink
	first.Close() // the relay dies mid-wave
	waitFor(t, ctx, "the worker to see the relay down", func() bool { return !e.deps.Mailer.RelayState().Up })
	// The outage outlasts what five retries used to allow (RetryBase 5 ms
	// doubling: 155 ms): four vain probes, 20 ms doubling, take 300 ms.
	waitFor(t, ctx, "four vain probes of the relay", func() bool { return vainProbes.Load() >= 4 })
	var failed, letterForEmail, attempts int64
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE channel = 'email' AND status IN ('failed', 'bounced')),
		count(*) FILTER (WHERE channel = 'letter' AND EXISTS (SELECT 1 FROM notice m WHERE m.account_id = notice.account_id AND m.channel = 'email')),
		coalesce(max(attempts) FILTER (WHERE channel = 'email' AND status = 'pending'), 0) FROM notice`).Scan(&failed, &letterForEmail, &attempts)
	if failed != 0 || letterForEmail != 0 || attempts != 0 {
		t.Fatalf("during the outage: %d emails failed, %d letters for people with an email, pending emails attempted %d times",
			failed, letterForEmail, attempts)
	}
	if r := relayShown(); r.Up || r.Reason == "" {
		t.Fatalf("wave status during the outage: %+v", r)
	}
	second, err := mailsink.Start(mailsink.Options{Addr: addr, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFor(t, ctx, "the relay to be seen back", func() bool { return e.deps.Mailer.RelayState().Up })
	waitFor(t, ctx, "ens wave status to show the relay back", func() bool { return relayShown().Up })
	c.Stop(ctx) //nolint:errcheck
	e.sink = second
	e.runUntilIdle(t)

	var pending int64
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE channel = 'email' AND status IN ('failed', 'bounced')),
		count(*) FILTER (WHERE channel = 'letter' AND EXISTS (SELECT 1 FROM notice m WHERE m.account_id = notice.account_id AND m.channel = 'email'))
		FROM notice`).Scan(&failed, &letterForEmail)
	e.pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'pending'`).Scan(&pending)
	if failed != 0 || letterForEmail != 0 || pending != 0 {
		t.Fatalf("after the outage: %d emails failed, %d letters from it, %d accounts never told", failed, letterForEmail, pending)
	}
	ids := map[string]int{}
	for _, raw := range append(first.Messages(), second.Messages()...) {
		m, _ := mail.ReadMessage(bytes.NewReader(raw))
		ids[m.Header.Get("Message-Id")]++
	}
	var sent int
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'email' AND status = 'sent'`).Scan(&sent)
	if len(ids) != sent {
		t.Fatalf("%d distinct messages reached the relays, %d recorded sent", len(ids), sent)
	}
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	if dups > 3 { // the mailer's connections: at most one message each in flight when the relay died
		t.Fatalf("%d messages sent twice", dups)
	}
}

// A recipient that keeps answering 4xx falls back to a letter only once its
// failures have lasted ENS_EMAIL_GIVE_UP_AFTER, however many attempts that
// took. (Before: after five attempts, minutes into a wave.)
func TestDeferredRecipientFallsBackOnlyAfterGiveUpTime(t *testing.T) {
	t.Parallel()
	e := setup(t, 60, mailsink.RecipientIs(mailsink.Temporary, "7@"))
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	e.deps.Clock = func() time.Time { return *now.Load() }
	e.deps.GiveUpAfter = 72 * time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var deferred int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM person WHERE email LIKE '%7@%'`).Scan(&deferred)
	if deferred == 0 {
		t.Fatal("the fixture has nobody whose address ends in 7")
	}
	waitFor(t, ctx, "eight attempts on every deferred email", func() bool {
		var n int64
		e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'email' AND status = 'pending' AND attempts >= 8`).Scan(&n)
		return n > 0 && n == deferred
	})
	var letters int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'letter' AND EXISTS
		(SELECT 1 FROM notice m WHERE m.account_id = notice.account_id AND m.channel = 'email')`).Scan(&letters)
	if letters != 0 {
		t.Fatalf("%d deferred emails fell back to letters within the give-up time", letters)
	}
	later := start.Add(72*time.Hour + time.Minute)
	now.Store(&later)
	c.Stop(ctx)                                                                             //nolint:errcheck
	e.pool.Exec(ctx, `UPDATE river_job SET scheduled_at = now() WHERE state = 'retryable'`) //nolint:errcheck
	e.runUntilIdle(t)
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'letter' AND EXISTS
		(SELECT 1 FROM notice m WHERE m.account_id = notice.account_id AND m.channel = 'email' AND m.status = 'failed')`).Scan(&letters)
	if letters != deferred {
		t.Fatalf("after 72 hours: %d letters for %d deferred emails", letters, deferred)
	}
	var reason string
	e.pool.QueryRow(ctx, `SELECT error FROM notice WHERE channel = 'email' AND status = 'failed' LIMIT 1`).Scan(&reason)
	if reason == "" {
		t.Fatal("a failed email without its reason")
	}
}

// A relay that answers 421 to everyone, or refuses the sender, is down:
// nobody is moved to a letter; the wave finishes when it answers again.
func TestRelayRefusingEveryoneIsARelayFailure(t *testing.T) {
	t.Parallel()
	e := setup(t, 200, func(string) error { return mailsink.ServiceUnavailable })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the worker to see the relay down", func() bool { return !e.deps.Mailer.RelayState().Up })
	var failed, attempted int64
	e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE attempts > 0 AND status = 'pending')
		FROM notice WHERE channel = 'email'`).Scan(&failed, &attempted)
	if failed != 0 || attempted != 0 {
		t.Fatalf("421 from the relay: %d emails failed, %d counted an attempt", failed, attempted)
	}
	e.sink.SetRule(nil)
	c.Stop(ctx) //nolint:errcheck
	e.runUntilIdle(t)
	var pending int64
	e.pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'pending'`).Scan(&pending)
	e.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'email' AND status = 'failed'`).Scan(&failed)
	if pending != 0 || failed != 0 {
		t.Fatalf("after the relay answered again: %d pending, %d failed", pending, failed)
	}
}

// waitFor polls cond (a database or a mailer's state has no signal to wait
// on) until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
