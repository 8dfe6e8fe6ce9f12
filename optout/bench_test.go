package optout_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
)

// BenchmarkServeDeadlineDay loads the real handler over loopback with 90%
// wrong guesses and 10% right codes, from thousands of client addresses,
// for a bounded time, and reports requests/s and latency.
func BenchmarkServeDeadlineDay(b *testing.B) {
	pool := testdb.Pool(b)
	hs := notified(b, pool, benchutil.Size(3000), time.Now().Add(time.Hour))
	svc := newService(pool)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: optout.NewHandler(svc)}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	figures := loadTest(b, []string{"http://" + ln.Addr().String()}, hs, 10*time.Second, 32)
	benchutil.Record(b, "serve", figures)
}

// clientIDs numbers the people a load test plays, across load tests: the
// honest people of a second test are not the first one's, whose attempts
// the limits still count.
var clientIDs atomic.Int64

// loadTest sends the deadline-day mix to urls (each worker keeps to one, in
// turn) for duration and returns the figures.
func loadTest(b *testing.B, urls []string, hs []holder, duration time.Duration, workers int) map[string]any {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		rightLat  []time.Duration // the people with their right code
		statuses  = map[int]int{}
	)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
		url := urls[w%len(urls)]
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var client *http.Client
			sent := 0
			for time.Now().Before(deadline) {
				// A new client address every 4 requests, as many people would.
				if sent%4 == 0 {
					if client != nil {
						client.CloseIdleConnections() // one person leaves: their connection closes
					}
					id := clientIDs.Add(1)
					ip := net.IPv4(127, 1, byte(id>>8), byte(id))
					client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
						DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext, MaxIdleConnsPerHost: 1}}
				}
				sent++
				var body string
				right := r.IntN(10) == 0
				if right {
					h := hs[r.IntN(len(hs))]
					body = `{"code":"` + h.code.String() + `","birth_date":"` + h.birth + `"}`
				} else {
					body = `{"code":"` + key.Derive(int64(10_000_000+r.IntN(1<<30))).String() + `","birth_date":"1970-01-01"}`
				}
				start := time.Now()
				resp, err := client.Post(url+"/api/v1/oppositions", "application/json", strings.NewReader(body))
				lat := time.Since(start)
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				latencies = append(latencies, lat)
				if right {
					rightLat = append(rightLat, lat)
				}
				statuses[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	pct := func(lat []time.Duration, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	errors5xx := 0
	byStatus := map[string]int{}
	for c, n := range statuses {
		byStatus[fmt.Sprint(c)] = n
		if c >= 500 || c == 0 {
			errors5xx += n
		}
	}
	return map[string]any{"requests": len(latencies), "requests_per_s": int(float64(len(latencies)) / duration.Seconds()),
		"p50_ms": pct(latencies, 0.50), "p99_ms": pct(latencies, 0.99), "right_code_p99_ms": pct(rightLat, 0.99), "5xx_or_failed": errors5xx, "by_status": byStatus,
		"target_p99_ms": 100, "concurrency": workers, "duration_s": duration.Seconds(), "servers": len(urls)}
}

// BenchmarkServeTwoProcesses runs two real `ens serve` processes on one
// database, behind one client spreading the deadline-day mix over both:
// their rate limits are one budget in PostgreSQL. Then an address-rotation
// attack: the limits table holds 1,000,000 addresses (written by SQL, as an
// attack would leave it) and attackers keep rotating fresh forwarded
// addresses through a trusted proxy while the mix is measured again; the
// figures include each process's peak memory.
func BenchmarkServeTwoProcesses(b *testing.B) {
	url, pool, hs, bin := serveBench(b)
	var servers []*serveProcess
	for range 2 {
		servers = append(servers, startServe(b, bin, url))
	}
	urls := []string{servers[0].url, servers[1].url}
	figures := map[string]any{"deadline_day": loadTest(b, urls, hs, 10*time.Second, 64)}

	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO rate_limit (key, attempts, not_before, touched_at)
		SELECT 'ip:10.' || (i >> 16) || '.' || ((i >> 8) & 255) || '.' || (i & 255), 6, now() + interval '2 seconds', now()
		FROM generate_series(1, 1000000) i ON CONFLICT DO NOTHING`); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var attacks atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 2_000_000 + w*1_000_000 + i
				req, _ := http.NewRequest("POST", urls[w%2]+"/api/v1/oppositions",
					strings.NewReader(`{"code":"`+key.Derive(int64(n)).String()+`","birth_date":"1970-01-01"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("100.%d.%d.%d", n>>16&255, n>>8&255, n&255))
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					attacks.Add(1)
				}
			}
		})
	}
	figures["during_address_rotation"] = loadTest(b, urls, hs, 10*time.Second, 48)
	close(stop)
	wg.Wait()
	var keys int64
	pool.QueryRow(ctx, `SELECT count(*) FROM rate_limit`).Scan(&keys) //nolint:errcheck
	figures["attack_requests"], figures["limit_keys_in_database"] = attacks.Load(), keys
	for i, s := range servers {
		figures[fmt.Sprintf("serve_%d_peak_rss_mb", i+1)] = s.peakRSSMB()
	}
	figures["target_requests_per_s"], figures["target_rss_mb"] = 2000, 200
	benchutil.Record(b, "serve-two-processes", figures)
}

// serveProcess is one `ens serve` started by a benchmark.
type serveProcess struct {
	cmd *exec.Cmd
	url string
}

func startServe(b *testing.B, bin, dbURL string, extra ...string) *serveProcess {
	b.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--ops-addr", ""}, extra...)...)
	// One core each, as two processes sharing a host should be set (the
	// README's deployment section): two runtimes sized for both cores
	// would contend with each other, PostgreSQL and the client.
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "ENS_CODE_KEY="+hex.EncodeToString(key),
		"ENS_TRUSTED_PROXIES=127.0.0.0/8", "ENS_LOG_FORMAT=json", "GOMAXPROCS=1", "ENS_OPS_USERS="+benchOpsUsers)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck
		cmd.Wait()                       //nolint:errcheck
	})
	// With the ops area in the same process, the public address is the
	// other one it listens on.
	opsOnly, opsAddr := false, ""
	for i := 0; i+1 < len(extra); i++ {
		switch extra[i] {
		case "--ops-addr":
			opsAddr = "http://" + extra[i+1] + "/"
		case "--addr":
			opsOnly = extra[i+1] == ""
		}
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok && (opsOnly || addr != opsAddr) {
			go io.Copy(io.Discard, out) //nolint:errcheck
			return &serveProcess{cmd: cmd, url: strings.TrimSuffix(addr, "/")}
		}
	}
	b.Fatal("ens serve exited before listening")
	return nil
}

// peakRSSMB reads the process's peak resident memory (VmHWM).
func (s *serveProcess) peakRSSMB() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return -1
}

// benchOpsUsers is one operator, olga, with a bcrypt hash of "o-pass" at
// the default cost, as `ens ops hash` makes them.
var benchOpsUsers = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("o-pass"), bcrypt.DefaultCost)
	if err != nil {
		panic(err)
	}
	return "olga:operator:" + string(h)
}()

// BenchmarkPublicFormWhileOpsSignInsFail measures the public form's
// deadline-day mix idle, then while six clients send wrong ops passwords
// (each a bcrypt comparison) from rotating forwarded addresses: with the
// ops area in the public process, then in a process of its own (`serve
// --addr ”`, as the deployment section advises), each process on one core.
// The ratio of the form's p50 under attack to idle is the figure.
func BenchmarkPublicFormWhileOpsSignInsFail(b *testing.B) {
	url, _, hs, bin := serveBench(b)
	figures := map[string]any{}
	for _, layout := range []string{"ops_in_public_process", "ops_apart"} {
		ops := freeLoopback(b)
		var public *serveProcess
		if layout == "ops_in_public_process" {
			public = startServe(b, bin, url, "--ops-addr", ops)
		} else {
			public = startServe(b, bin, url)
			startServe(b, bin, url, "--addr", "", "--ops-addr", ops)
		}
		idle := loadTest(b, []string{public.url}, hs, 8*time.Second, 16)
		stop := make(chan struct{})
		var tries atomic.Int64
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				client := &http.Client{Timeout: 5 * time.Second}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest("GET", "http://"+ops+"/ops/", nil)
					req.SetBasicAuth("olga", fmt.Sprintf("wrong-%d-%d", w, i))
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("100.64.%d.%d", w, i&255))
					if resp, err := client.Do(req); err == nil {
						io.Copy(io.Discard, resp.Body) //nolint:errcheck
						resp.Body.Close()
						tries.Add(1)
					}
				}
			})
		}
		attacked := loadTest(b, []string{public.url}, hs, 8*time.Second, 16)
		close(stop)
		wg.Wait()
		figures[layout] = map[string]any{"idle": idle, "during_wrong_ops_passwords": attacked, "wrong_sign_ins": tries.Load(),
			"p50_ratio": attacked["p50_ms"].(float64) / idle["p50_ms"].(float64), "target_p50_ratio": 2}
		public.cmd.Process.Signal(os.Interrupt) //nolint:errcheck
	}
	benchutil.Record(b, "ops-sign-in-attack", figures)
}

// freeLoopback is a loopback address nothing listens on yet.
func freeLoopback(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveBench is what the benchmarks of real `ens serve` processes start
// from: a database with 3,000 notified people (scaled), a pool on it
// (closed with the benchmark), and the binary built.
func serveBench(b *testing.B) (string, *pgxpool.Pool, []holder, string) {
	url := testdb.URL(b)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	hs := notified(b, pool, benchutil.Size(3000), time.Now().Add(time.Hour))
	bin := filepath.Join(b.TempDir(), "ens")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ens-sante/ens/cmd/ens").CombinedOutput(); err != nil {
		b.Fatalf("building ens: %v\n%s", err, out)
	}
	return url, pool, hs, bin
}
