package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning/notice"
)

// relayDelay is what a real relay across a network takes per message.
const relayDelay = 20 * time.Millisecond

// BenchmarkWorkerProcessesOverASlowRelay: one, two and three real `ens
// worker --until-idle` processes (4 SMTP connections each) on the same wave,
// against a relay taking 20 ms a message, and bare go-mail with 4
// connections to the same relay: throughput scales with the processes, and
// each keeps up with bare go-mail.
func BenchmarkWorkerProcessesOverASlowRelay(b *testing.B) {
	bin := buildEns(b)
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

// BenchmarkWaveEndToEnd: a national-size wave (1,000,000 people) through the
// real CLI — import, launch, one `ens worker --until-idle` — against, in
// the same run, the physical limit of its two halves: bare go-mail sending
// as many emails of the same size to the same kind of sink over the same
// connections, and bare gofpdf (our renderer alone) rendering as many
// letters in batches of the same size. It keeps the worker's CPU profile,
// peak RSS and log, the CPU that the worker, PostgreSQL and the sink used,
// and how busy the machine was in each phase.
func BenchmarkWaveEndToEnd(b *testing.B) {
	const conns = 4
	keyHex := strings.Repeat("ab", 32)
	key, _ := optout.ParseKey(keyHex)
	n := benchutil.Size(1_000_000)
	profile := filepath.Join(benchutil.Root(), "var", "bench", "wave-end-to-end.cpu.pprof")
	e := newWaveBench(b, keyHex, conns, profile)
	c := e.c
	importTime := e.importRegistry(n)
	launchTime, _, _ := e.run("wave", "launch", "w")
	postmaster := postmasterOf(b, c.url)
	cpu0, pg0, self0 := readCPU(b), serverCPU(b, postmaster), benchutil.SelfCPU()
	workerTime, worker, workerLog := e.run("worker", "--until-idle")
	// Its log: when each chunk and batch ended.
	os.WriteFile(strings.TrimSuffix(profile, ".cpu.pprof")+".worker.log", workerLog, 0o600) //nolint:errcheck
	workerBusy := readCPU(b).BusySince(cpu0)
	// PostgreSQL's CPU (postmaster, backends) and this process's (the sink).
	pgCPU, sinkCPU := serverCPU(b, postmaster)-pg0, benchutil.SelfCPU()-self0
	rss := float64(worker.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // kB → MB
	workerCPU := processCPU(worker)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		b.Fatal(err)
	}
	topStatements(b, conn, strings.TrimSuffix(profile, ".cpu.pprof")+".statements.txt")
	var emails, letters, batches, pending int64
	conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE channel = 'email' AND status = 'sent'),
		count(*) FILTER (WHERE channel = 'letter' AND status = 'printed'), count(DISTINCT batch_id),
		(SELECT count(*) FROM account WHERE state = 'pending') FROM notice`).Scan(&emails, &letters, &batches, &pending) //nolint:errcheck
	conn.Close(ctx)
	if pending != 0 || emails == 0 || letters == 0 {
		b.Fatalf("the wave did not finish: %d emails, %d letters, %d accounts pending", emails, letters, pending)
	}

	bt := runBareTools(b, emails, letters, conns, key)

	secs := func(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
	bare := bt.emails + bt.letters
	benchutil.Record(b, "wave-end-to-end", map[string]any{
		"people": n, "emails": emails, "letters": letters, "letter_batches": batches, "smtp_connections": conns,
		"import_s": secs(importTime), "launch_s": secs(launchTime), "worker_s": secs(workerTime),
		"launch_to_every_notice_out_s": secs(launchTime + workerTime),
		"bare_go_mail_s":               secs(bt.emails), "bare_gofpdf_s": secs(bt.letters), "bare_total_s": secs(bare),
		"ratio_launch_to_out_over_bare": round2((launchTime + workerTime).Seconds() / bare.Seconds()),
		"ratio_worker_over_bare":        round2(workerTime.Seconds() / bare.Seconds()),
		"target_ratio":                  1.25, "worker_peak_rss_mb": int(rss), "target_rss_mb": 1024,
		"worker_cpu_profile": profile, "worker_cpu_s": secs(workerCPU),
		"postgres_cpu_during_worker_s": secs(pgCPU), "sink_cpu_during_worker_s": secs(sinkCPU),
		"bare_go_mail_and_sink_cpu_s": secs(bt.emailsCPU),
		// The machine's CPU (all cores) busy during each phase: waiting,
		// or the cores' limit.
		"machine_busy_worker": round2(workerBusy), "machine_busy_bare_go_mail": round2(bt.emailsBusy),
		"machine_busy_bare_gofpdf": round2(bt.lettersBusy),
	})
}

// topStatements writes the statements that took the database's time, when
// pg_stat_statements is loaded (ENS_TEST_PG_OPTIONS="-c
// shared_preload_libraries=pg_stat_statements"), to path.
func topStatements(b *testing.B, conn *pgx.Conn, path string) {
	ctx := context.Background()
	owner, err := pgx.Connect(ctx, testdb.OwnerURL(conn.Config().ConnString()))
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close(ctx)
	var preload string
	if err := owner.QueryRow(ctx, `SHOW shared_preload_libraries`).Scan(&preload); err != nil || !strings.Contains(preload, "pg_stat_statements") {
		return // not loaded
	}
	if _, err := owner.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		b.Fatal(err)
	}
	rows, err := owner.Query(ctx, `SELECT round(total_exec_time::numeric / 1000, 1), calls, rows,
			round((shared_blks_dirtied + shared_blks_written)::numeric), regexp_replace(left(query, 160), '\s+', ' ', 'g')
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25`)
	if err != nil {
		b.Logf("pg_stat_statements: %v", err)
		return
	}
	var out strings.Builder
	out.WriteString("seconds\tcalls\trows\tblocks dirtied+written\tquery\n")
	for rows.Next() {
		var secs, blocks float64
		var calls, n int64
		var q string
		if err := rows.Scan(&secs, &calls, &n, &blocks, &q); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&out, "%.1f\t%d\t%d\t%.0f\t%s\n", secs, calls, n, blocks, q)
	}
	os.WriteFile(path, []byte(out.String()), 0o600) //nolint:errcheck
}

// postmasterOf finds the PID of the PostgreSQL server behind url: the
// parent of a backend.
func postmasterOf(b *testing.B, url string) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	pm, err := benchutil.ParentPID(backend)
	if err != nil {
		b.Fatal(err)
	}
	return pm
}

func serverCPU(b *testing.B, pid int) time.Duration {
	t, err := benchutil.ServerCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func readCPU(b *testing.B) benchutil.MachineCPU {
	c, err := benchutil.ReadMachineCPU()
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// benchEns runs the real CLI on a private database of its own.
type benchEns struct {
	b   *testing.B
	bin string
	c   *cli
	env []string // the CLI's environment: add to it before running
}

func newBenchEns(b *testing.B, keyHex string) *benchEns {
	return &benchEns{b: b, bin: buildEns(b), c: &cli{url: testdb.URL(b), dir: b.TempDir()},
		env: append(os.Environ(), "ENS_CODE_KEY="+keyHex)}
}

// newWaveBench is the CLI on a private database of its own, set to send
// a wave's emails over conns connections to a discarding sink (closed when
// b ends), to render its letters at once in its directory, and to write the
// worker's CPU profile to profile.
func newWaveBench(b *testing.B, keyHex string, conns int, profile string) *benchEns {
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	if err := os.MkdirAll(filepath.Dir(profile), 0o750); err != nil {
		b.Fatal(err)
	}
	e := newBenchEns(b, keyHex)
	e.env = append(e.env, "SMTP_URL="+sink.URL(), fmt.Sprintf("ENS_SMTP_CONNECTIONS=%d", conns),
		"ENS_POST_DELAY=0", "ENS_LETTERS_DIR="+filepath.Join(e.c.dir, "letters"), "ENS_CPU_PROFILE="+profile, "ENS_LOG_FORMAT=json")
	return e
}

// run runs ens with args; it returns its wall time, its state and output.
func (e *benchEns) run(args ...string) (time.Duration, *os.ProcessState, []byte) {
	cmd := exec.Command(e.bin, append([]string{"--database-url", e.c.url, "--var-dir", e.c.dir}, args...)...)
	cmd.Env = e.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.b.Fatalf("ens %v: %v\n%s", args, err, out)
	}
	return time.Since(start), cmd.ProcessState, out
}

// importRegistry imports a synthetic registry of n people (always the
// same), and returns how long the import took.
func (e *benchEns) importRegistry(n int64) time.Duration {
	reg := filepath.Join(e.c.dir, "reg.csv")
	e.run("fixtures", "registry", "--count", fmt.Sprint(n), "--seed", "16", "-o", reg)
	took, _, _ := e.run("registry", "import", reg)
	return took
}

// bareTools is the raw tools' run that an end-to-end figure is a ratio
// against: bare go-mail sending as many emails to a fresh sink, then bare
// gofpdf rendering as many letters.
type bareTools struct {
	emails, letters         time.Duration // wall time
	emailsCPU, lettersCPU   time.Duration // this process's: go-mail with its sink; the renderer
	emailsBusy, lettersBusy float64       // the machine's cores, busy
}

func runBareTools(b *testing.B, emails, letters int64, conns int, key optout.Key) bareTools {
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	var bt bareTools
	start, cpu0, self0 := time.Now(), readCPU(b), benchutil.SelfCPU()
	if _, err := benchutil.BareEmails(sink.Addr(), emails, conns, key.MailKey(), nil); err != nil {
		b.Fatal(err)
	}
	bt.emails, bt.emailsBusy, bt.emailsCPU = time.Since(start), readCPU(b).BusySince(cpu0), benchutil.SelfCPU()-self0
	start, cpu0, self0 = time.Now(), readCPU(b), benchutil.SelfCPU()
	bareLettersRender(b, letters)
	bt.letters, bt.lettersBusy, bt.lettersCPU = time.Since(start), readCPU(b).BusySince(cpu0), benchutil.SelfCPU()-self0
	return bt
}

// bareLettersRender renders n letters with our renderer alone (gofpdf, the
// same page), in batches of the pipeline's size, each discarded once made.
func bareLettersRender(b *testing.B, n int64) {
	ns := make([]*notify.Notice, 0, notice.LetterBatchSize)
	for i := range n {
		ns = append(ns, &notify.Notice{ID: i, Kind: notify.KindOpposition, FirstName: "Gaëlle", LastName: "Ñúñez",
			Female: true, Code: "ABCD-EFGH-JKMN", Deadline: time.Now(), AddressLines: [4]string{"", "", "12 rue de l'Église", ""},
			Postcode: fmt.Sprintf("75%03d", i%1000), City: "Paris"})
		if len(ns) == notice.LetterBatchSize || i == n-1 {
			if _, err := notify.RenderLetters(ns, time.Now(), fixtures.LetterInfo); err != nil {
				b.Fatal(err)
			}
			ns = ns[:0]
		}
	}
}
