package optout_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	figures := loadTest(b, "http://"+ln.Addr().String(), hs, 10*time.Second, 32)
	benchutil.Record(b, "serve", figures)
}

func loadTest(b *testing.B, url string, hs []holder, duration time.Duration, workers int) map[string]any {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		statuses  = map[int]int{}
		next      atomic.Int64
	)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
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
					id := next.Add(1)
					ip := net.IPv4(127, 1, byte(id>>8), byte(id))
					client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
						DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext, MaxIdleConnsPerHost: 1}}
				}
				sent++
				var body string
				if r.IntN(10) == 0 {
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
				statuses[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
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
		"p50_ms": pct(0.50), "p99_ms": pct(0.99), "5xx_or_failed": errors5xx, "by_status": byStatus,
		"target_requests_per_s": 1000, "target_p99_ms": 100, "concurrency": workers, "duration_s": duration.Seconds()}
}
