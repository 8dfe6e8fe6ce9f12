package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/pgserver"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
)

// The fault suite (issue #16): on a real wave worked by real `ens worker`
// processes, one fault at a time — workers SIGKILLed at random moments,
// PostgreSQL restarted mid-wave, the relay stopped and restarted, the
// letters directory on a full filesystem, `ens serve` killed under load —
// then whatever died is restarted and the wave finished. Each run must end
// with nobody lost, no message sent twice beyond those in flight at a fault
// (same Message-ID, same code), no letter rendered twice, no PDF that no
// batch knows, and `ens reconcile` clean. It prints a table: fault, runs,
// lost, duplicates, orphans, time to recover.
//
// make test runs one short run of each fault; `make chaos` sets
// ENS_CHAOS_RUNS (runs of each fault), ENS_CHAOS_PEOPLE and ENS_CHAOS_KILLS.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs real processes")
	}
	runs, people, kills := chaosSetting("ENS_CHAOS_RUNS", 1), chaosSetting("ENS_CHAOS_PEOPLE", 1500), chaosSetting("ENS_CHAOS_KILLS", 3)
	bin := buildEns(t)
	faults := []struct {
		name   string
		inject func(r *chaosRun)
	}{
		{fmt.Sprintf("worker SIGKILLed %d times (2 workers)", kills), func(r *chaosRun) { r.killWorkers(kills) }},
		{"PostgreSQL restarted mid-chunk and mid-render", (*chaosRun).restartDatabase},
		{"relay stopped 3 s, then restarted", (*chaosRun).stopRelay},
		{"letters directory full, then freed", (*chaosRun).fillLetters},
		{"ens serve SIGKILLed under load", (*chaosRun).killServe},
	}
	rows := make([]string, len(faults))
	// Each fault on a cluster of its own (one of them restarts it), all at
	// once: most of a run is waiting (for a dead worker's jobs to be
	// rescued, for a relay to come back).
	t.Run("faults", func(t *testing.T) {
		for i, f := range faults {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				h := newChaosHarness(t, bin)
				var lost, dups, bound, twice, orphans int
				var recovery time.Duration
				done := 0
				for run := range runs {
					r := h.newRun(t, fmt.Sprintf("%s #%d", f.name, run+1), people, uint64(run+1))
					if r == nil {
						break // the fault cannot be set up here (reported by newRun)
					}
					f.inject(r)
					res := r.finish()
					lost, dups, bound, twice, orphans = lost+res.lost, dups+res.duplicates, bound+res.inFlight, twice+res.renderedTwice, orphans+res.orphans
					recovery = max(recovery, res.recovery)
					done++
				}
				if done == 0 {
					rows[i] = fmt.Sprintf("| %s | skipped | | | | | |", f.name)
					return
				}
				rows[i] = fmt.Sprintf("| %s | %d | %d | %d (%d) | %d | %d | %.1f s at most |", f.name, done, lost, dups, bound, twice, orphans, recovery.Seconds())
			})
		}
	})
	table := "| fault | runs | lost | duplicates (in flight at most) | letters rendered twice | orphan files | time to recover |\n|---|---|---|---|---|---|---|\n" +
		strings.Join(rows, "\n") + "\n"
	t.Logf("fault suite, %d people per wave:\n%s", people, table)
	if out := os.Getenv("ENS_CHAOS_TABLE"); out != "" {
		os.WriteFile(out, []byte(table), 0o644) //nolint:errcheck
	}
}

// buildEns builds the ens binary that suites and benchmarks run as real
// processes.
func buildEns(t testing.TB) string {
	bin := filepath.Join(t.TempDir(), "ens")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ens-sante/ens/cmd/ens").CombinedOutput(); err != nil {
		t.Fatalf("building ens: %v\n%s", err, out)
	}
	return bin
}

// Each worker of the suite sends through chaosConnections SMTP connections
// for each of its chaosNoticeWorkers chunks at once: what a fault may
// leave in flight.
const chaosConnections, chaosNoticeWorkers = 2, 4

// chaosHarness is what every run shares: the ens binary, a PostgreSQL
// cluster of the suite's own (so that it can be restarted), a code key.
type chaosHarness struct {
	bin string
	srv *pgserver.Server
	key optout.Key
	n   atomic.Int64
}

func newChaosHarness(t *testing.T, bin string) *chaosHarness {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgserver.Start(ctx, filepath.Join(t.TempDir(), "pg"), pgserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Remove() }) //nolint:errcheck
	key, _ := hex.DecodeString(strings.Repeat("ef", 32))
	return &chaosHarness{bin: bin, srv: srv, key: optout.Key(key)}
}

// chaosRun is one wave under one fault.
type chaosRun struct {
	t        *testing.T
	h        *chaosHarness
	name     string
	dir      string
	letters  string
	url      string // the application role's
	env      []string
	rng      *rand.Rand
	sinkAddr string

	mu       sync.Mutex
	sink     *mailsink.Sink
	messages [][]byte // of sinks closed by a fault
	workers  []*exec.Cmd
	platform *platformReceiver // receives the change feed the workers push
	kills    int               // processes killed while sending (each may leave messages in flight)
	faultEnd time.Time
	// oppositions the public API answered 200 for, by account id
	opposed map[int64]bool
}

// newRun creates a database, imports a registry of people, launches a wave
// and starts two workers.
func (h *chaosHarness) newRun(t *testing.T, name string, people int, seed uint64) *chaosRun {
	t.Helper()
	n := h.n.Add(1)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, h.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("chaos_%d", n)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	r := &chaosRun{t: t, h: h, name: name, dir: t.TempDir(), rng: rand.New(rand.NewPCG(seed, uint64(n))), opposed: map[int64]bool{}}
	r.letters = filepath.Join(r.dir, "letters")
	owner := h.srv.DatabaseURL(db)
	r.url = pgserver.WithUser(owner, provisioning.DefaultAppRole)
	sink, err := mailsink.Start(mailsink.Options{Keep: true, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.sink, r.sinkAddr = sink, sink.Addr()
	t.Cleanup(func() { r.stopAll(); r.currentSink().Close() })
	r.platform = startPlatform(t)
	r.env = append(append(os.Environ(), r.platform.env()...), "SMTP_URL=smtp://"+r.sinkAddr+"?tls=none", "ENS_CODE_KEY="+hex.EncodeToString(h.key),
		"ENS_LETTERS_DIR="+r.letters, "ENS_POST_DELAY=0", "ENS_RETRY_BASE=200ms", "ENS_DB_WAIT=2m", "ENS_LOG_FORMAT=json",
		"ENS_SMTP_CONNECTIONS="+strconv.Itoa(chaosConnections), "ENS_NOTICE_WORKERS="+strconv.Itoa(chaosNoticeWorkers))
	if out, err := r.ens("", "--database-url", owner, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	reg := filepath.Join(r.dir, "reg.csv")
	if out, err := r.ens("", "fixtures", "registry", "--count", strconv.Itoa(people), "--seed", strconv.FormatUint(seed, 10), "-o", reg); err != nil {
		t.Fatalf("fixtures: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"registry", "import", reg}, {"wave", "launch", "w"}} {
		if out, err := r.ens("", args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if strings.Contains(name, "letters directory") && !r.mountSmallLetters() {
		return nil
	}
	r.startWorker()
	r.startWorker()
	return r
}

// ens runs a command to its end, as the application role unless the
// arguments name a database.
func (r *chaosRun) ens(stdin string, args ...string) (string, error) {
	if !strings.HasPrefix(strings.Join(args, " "), "--database-url") {
		args = append([]string{"--database-url", r.url}, args...)
	}
	cmd := exec.Command(r.h.bin, append(args, "--var-dir", r.dir)...)
	cmd.Env, cmd.Stdin = r.env, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *chaosRun) startWorker() {
	cmd := exec.Command(r.h.bin, "--database-url", r.url, "--var-dir", r.dir, "worker")
	cmd.Env, cmd.Stdout, cmd.Stderr = r.env, io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.workers = append(r.workers, cmd)
	r.mu.Unlock()
}

// stopAll stops the running workers gracefully (SIGTERM) and waits.
func (r *chaosRun) stopAll() {
	r.mu.Lock()
	ws := r.workers
	r.workers = nil
	r.mu.Unlock()
	for _, w := range ws {
		w.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	}
	for _, w := range ws {
		w.Wait() //nolint:errcheck
	}
}

func (r *chaosRun) currentSink() *mailsink.Sink {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sink
}

// waitEmails waits until n messages reached the relay (or a minute).
func (r *chaosRun) waitEmails(n int64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.currentSink().WaitCount(ctx, n) //nolint:errcheck
}

// killWorkers SIGKILLs a running worker at random moments while the wave
// is being sent, starting another in its place each time.
func (r *chaosRun) killWorkers(kills int) {
	for range kills {
		r.waitEmails(r.currentSink().Count() + int64(10+r.rng.IntN(80)))
		r.mu.Lock()
		i := r.rng.IntN(len(r.workers))
		w := r.workers[i]
		r.workers = append(r.workers[:i], r.workers[i+1:]...)
		r.kills++
		r.mu.Unlock()
		w.Process.Kill() //nolint:errcheck
		w.Wait()         //nolint:errcheck
		r.startWorker()
	}
	r.faultEnd = time.Now()
}

// restartDatabase restarts PostgreSQL (fast mode) once a fifth of the wave
// is out, and again once a letter batch is being rendered or written.
func (r *chaosRun) restartDatabase() {
	r.waitEmails(200)
	if err := r.h.srv.Restart(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.kills += 2 // each worker may lose the record of what was in flight
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if entries, _ := os.ReadDir(filepath.Join(r.letters, "wave-1")); len(entries) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.h.srv.Restart(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.kills += 2
	r.faultEnd = time.Now()
}

// stopRelay closes the relay for three seconds mid-wave, then opens it again
// on the same address.
func (r *chaosRun) stopRelay() {
	r.waitEmails(200)
	r.mu.Lock()
	old := r.sink
	r.mu.Unlock()
	old.Close()
	time.Sleep(3 * time.Second)
	sink, err := mailsink.Start(mailsink.Options{Addr: r.sinkAddr, Keep: true, Delay: 2 * time.Millisecond})
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.messages, r.sink = append(r.messages, old.Messages()...), sink
	r.kills += 2 // a message the relay took as it closed may not be recorded
	r.mu.Unlock()
	r.faultEnd = time.Now()
}

// mountSmallLetters puts the letters directory on a 1 MiB tmpfs, filled
// (root only).
func (r *chaosRun) mountSmallLetters() bool {
	if os.Geteuid() != 0 {
		r.t.Log("letters directory full: skipped (mounting a tmpfs needs root)")
		return false
	}
	os.MkdirAll(r.letters, 0o700) //nolint:errcheck
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", r.letters).CombinedOutput(); err != nil {
		r.t.Logf("letters directory full: skipped (mount: %v %s)", err, out)
		return false
	}
	r.t.Cleanup(func() { exec.Command("umount", "-l", r.letters).Run() }) //nolint:errcheck
	filler, _ := os.Create(filepath.Join(r.letters, "filler"))
	io.Copy(filler, io.LimitReader(zeroReader{}, 4<<20)) //nolint:errcheck // ENOSPC ends it
	filler.Close()
	return true
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// fillLetters lets renders fail on the full directory until one has, then
// frees it and grows it to hold the wave's letters.
func (r *chaosRun) fillLetters() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	failed := false
	for deadline := time.Now().Add(2 * time.Minute); !failed && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = 'render_letters' AND errors IS NOT NULL)`).Scan(&failed) //nolint:errcheck
	}
	if !failed {
		r.t.Error("no letter render met the full directory")
	}
	os.Remove(filepath.Join(r.letters, "filler")) //nolint:errcheck
	if out, err := exec.Command("mount", "-o", "remount,size=256m", r.letters).CombinedOutput(); err != nil {
		r.t.Fatalf("growing the letters filesystem: %v %s", err, out)
	}
	r.faultEnd = time.Now()
}

// killServe lets the wave go out, then sends oppositions to `ens serve`
// from a few clients, SIGKILLs it mid-load and starts it again: every
// opposition answered 200 must be recorded.
func (r *chaosRun) killServe() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	// People are notified as their chunk's emails settle.
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var notified int
		if conn.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'notified'`).Scan(&notified); notified >= 400 {
			break
		}
	}
	rows, err := conn.Query(ctx, `SELECT a.id, p.birth_date FROM account a JOIN person p ON p.id = a.person_id
		WHERE a.state = 'notified' ORDER BY a.id LIMIT 400`)
	if err != nil {
		r.t.Fatal(err)
	}
	type holder struct {
		id    int64
		birth time.Time
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (holder, error) {
		var h holder
		err := row.Scan(&h.id, &h.birth)
		return h, err
	})
	conn.Close(ctx)
	if err != nil || len(hs) == 0 {
		out, _ := r.ens("", "wave", "status", "w")
		r.t.Fatalf("no notified holder to oppose (%v); %d emails\n%s", err, r.currentSink().Count(), out)
	}
	var url atomic.Value
	start := func() *exec.Cmd {
		cmd := exec.Command(r.h.bin, "--database-url", r.url, "serve", "--addr", "127.0.0.1:0", "--ops-addr", "")
		cmd.Env = r.env
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			r.t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				url.Store(strings.TrimSuffix(addr, "/"))
				go io.Copy(io.Discard, out) //nolint:errcheck
				return cmd
			}
		}
		r.t.Fatal("ens serve exited before listening")
		return nil
	}
	serve := start()
	var next atomic.Int64
	var wg sync.WaitGroup
	third := make(chan struct{}) // closed as the third of the holders is taken
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if int(i) >= len(hs) {
					return
				}
				if i == int64(len(hs))/3 {
					close(third)
				}
				h := hs[i]
				body := fmt.Sprintf(`{"code":%q,"birth_date":%q}`, r.h.key.Derive(h.id).String(), h.birth.Format(time.DateOnly))
				for attempt := 0; attempt < 50; attempt++ { // a person tries again when the site does not answer
					resp, err := http.Post(url.Load().(string)+"/api/v1/oppositions", "application/json", strings.NewReader(body))
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					io.Copy(io.Discard, resp.Body) //nolint:errcheck
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						r.mu.Lock()
						r.opposed[h.id] = true
						r.mu.Unlock()
						break
					}
				}
			}
		})
	}
	<-third
	serve.Process.Kill() //nolint:errcheck
	serve.Wait()         //nolint:errcheck
	serve = start()
	r.faultEnd = time.Now()
	wg.Wait()
	serve.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	serve.Wait()                          //nolint:errcheck
}

// chaosResult is what one run ended with.
type chaosResult struct {
	lost, duplicates, inFlight, renderedTwice, orphans int
	recovery                                           time.Duration
}

// finish restarts what died — the workers stop, one `ens worker
// --until-idle` finishes the wave — and checks what the run left.
func (r *chaosRun) finish() chaosResult {
	t := r.t
	r.stopAll()
	if out, err := r.ens("", "worker", "--until-idle"); err != nil {
		t.Fatalf("%s: finishing the wave: %v\n%s", r.name, err, out)
	}
	res := chaosResult{recovery: time.Since(r.faultEnd)}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// Emails: every one recorded sent reached the relay; a message that
	// reached it twice is one in flight at a fault, with its same code.
	r.mu.Lock()
	msgs := append(r.messages, r.sink.Messages()...)
	r.mu.Unlock()
	codes := map[string]map[string]bool{}
	for _, raw := range msgs {
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		id := m.Header.Get("Message-Id")
		if codes[id] == nil {
			codes[id] = map[string]bool{}
		}
		codes[id][codeRe.FindString(string(raw))] = true
	}
	for id, cs := range codes {
		if len(cs) != 1 {
			t.Errorf("%s: message %s went out with different codes", r.name, id)
		}
	}
	res.duplicates = len(msgs) - len(codes)
	res.inFlight = r.kills * chaosNoticeWorkers * chaosConnections
	var sentEmails, pending, renderedNotices, pages int
	var batchFiles []string
	if err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM notice WHERE channel = 'email' AND status IN ('sent', 'bounced')),
			(SELECT count(*) FROM account WHERE state = 'pending'),
			(SELECT count(*) FROM notice WHERE batch_id IS NOT NULL),
			(SELECT coalesce(sum(pages), 0) FROM letter_batch),
			(SELECT coalesce(array_agg(file), '{}') || coalesce(array_agg(manifest), '{}') FROM letter_batch)`).Scan(
		&sentEmails, &pending, &renderedNotices, &pages, &batchFiles); err != nil {
		t.Fatal(err)
	}
	res.lost = max(0, sentEmails-len(codes)) + pending
	for id := range r.opposed {
		var state string
		if err := conn.QueryRow(ctx, `SELECT state FROM account WHERE id = $1`, id).Scan(&state); err != nil || state != "opposed" {
			res.lost++
			t.Errorf("%s: an opposition answered 200 was not recorded (account %d is %s)", r.name, id, state)
		}
	}
	res.renderedTwice = pages - renderedNotices

	// Files: every file in the letters directory is a batch's; every batch's
	// file is there.
	known := map[string]bool{}
	for _, f := range batchFiles {
		known[f] = true
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: a batch's file is missing: %v", r.name, err)
			res.lost++
		}
	}
	filepath.WalkDir(r.letters, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() && !known[p] {
			res.orphans++
			t.Errorf("%s: %s belongs to no batch", r.name, p)
		}
		return nil
	})

	if out, err := r.ens("", "reconcile", "w"); err != nil {
		t.Errorf("%s: ens reconcile: %v\n%s", r.name, err, out)
		res.lost++
	}
	// The platform holds every change, once, in order, whatever died.
	var head int64
	if err := conn.QueryRow(ctx, `SELECT seq FROM account_feed_head`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	if err := r.platform.check(head); err != nil {
		t.Errorf("%s: the platform's feed: %v", r.name, err)
		res.lost++
	}
	if res.lost > 0 || res.duplicates > res.inFlight || res.renderedTwice != 0 {
		t.Errorf("%s: lost %d, duplicates %d (at most %d in flight), letters rendered twice %d",
			r.name, res.lost, res.duplicates, res.inFlight, res.renderedTwice)
	}
	return res
}

// chaosSetting reads one of make chaos's settings (a test's, not ens's).
func chaosSetting(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
