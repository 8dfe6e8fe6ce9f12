package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
)

// relayDelay is what a real relay across a network takes per message.
const relayDelay = 20 * time.Millisecond

// BenchmarkWorkerProcessesOverASlowRelay: one, two and three real `ens
// worker --until-idle` processes (4 SMTP connections each) on the same wave,
// against a relay taking 20 ms a message, and bare go-mail with 4
// connections to the same relay: throughput scales with the processes, and
// each keeps up with bare go-mail.
func BenchmarkWorkerProcessesOverASlowRelay(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "ens")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ens-sante/ens/cmd/ens").CombinedOutput(); err != nil {
		b.Fatalf("building ens: %v\n%s", err, out)
	}
	const conns = 4
	keyHex := strings.Repeat("ab", 32)
	key, _ := optout.ParseKey(keyHex)
	// Many more notice chunks (500 people each) than a process works at
	// once (8), as in a national wave: with a handful, the first process
	// takes them all and the others find nothing to do.
	n := benchutil.Size(20_000)
	relay, err := mailsink.Start(mailsink.Options{Delay: relayDelay})
	if err != nil {
		b.Fatal(err)
	}
	defer relay.Close()
	bare, err := benchutil.BareEmails(relay.Addr(), 1000, conns, key.MailKey(), nil)
	if err != nil {
		b.Fatal(err)
	}
	figures := map[string]any{"relay_delay_ms": relayDelay.Milliseconds(), "connections_per_process": conns,
		"bare_go_mail_msgs_per_s": int(bare), "wave_people": n}
	var one float64
	for _, procs := range []int{1, 2, 3} {
		c := &cli{url: testdb.URL(b), dir: b.TempDir()}
		reg := filepath.Join(c.dir, "reg.csv")
		run := func(env []string, args ...string) error {
			cmd := exec.Command(bin, append([]string{"--database-url", c.url, "--var-dir", c.dir}, args...)...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("ens %v: %w\n%s", args, err, out)
			}
			return nil
		}
		for _, args := range [][]string{{"fixtures", "registry", "--count", fmt.Sprint(n), "--seed", "4", "-o", reg},
			{"registry", "import", reg}, {"wave", "launch", "w"}} {
			if err := run(nil, args...); err != nil {
				b.Fatal(err)
			}
		}
		env := []string{"ENS_CODE_KEY=" + keyHex, "SMTP_URL=" + relay.URL(), "ENS_SMTP_CONNECTIONS=4", "ENS_POST_DELAY=0"}
		before := relay.Count()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, procs)
		for i := range procs {
			wg.Go(func() { errs[i] = run(env, "worker", "--until-idle") })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, c.url)
		if err != nil {
			b.Fatal(err)
		}
		var emails int64
		var last time.Time
		conn.QueryRow(ctx, `SELECT count(*), max(sent_at) FROM notice WHERE channel = 'email' AND status = 'sent'`).Scan(&emails, &last) //nolint:errcheck
		conn.Close(ctx)
		rate := float64(emails) / last.Sub(start).Seconds()
		if procs == 1 {
			one = rate
		}
		figures[fmt.Sprintf("processes_%d", procs)] = map[string]any{"emails": emails, "relay_accepted": relay.Count() - before,
			"emails_per_s": int(rate), "scaling_vs_one": float64(int(rate/one*100)) / 100,
			"per_process_vs_bare": float64(int(rate/float64(procs)/bare*100)) / 100}
	}
	figures["targets"] = "2 processes >= 1.8 x 1; each >= 0.8 x bare go-mail with the same connections"
	benchutil.Record(b, "worker-processes-slow-relay", figures)
}
