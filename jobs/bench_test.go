package jobs_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
)

// BenchmarkEmails: notices through the whole pipeline (River jobs, database,
// rendering, SMTP) against a bare go-mail loop sending the same messages to
// the same sink over the same number of connections.
func BenchmarkEmails(b *testing.B) {
	jobs.TuneGC() // as ens worker runs
	n := benchutil.Size(20_000)
	const conns = 4
	// Bare go-mail.
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	mailer, err := notify.NewMailer(notify.SMTPConfig{URL: sink.URL(), Connections: conns})
	if err != nil {
		b.Fatal(err)
	}
	e, _ := notify.RenderEmail(&notify.Notice{ID: 1, Kind: notify.KindOpposition, FirstName: "Zoé", LastName: "Martin",
		Code: "ABCD-EFGH-JKMN", Deadline: time.Now()})
	client, _ := mail.NewClient("127.0.0.1", mail.WithPort(portOf(sink.Addr())), mail.WithTLSPolicy(mail.NoTLS), mail.WithoutNoop())
	start := time.Now()
	var wg sync.WaitGroup
	per := n / conns
	for range conns {
		wg.Go(func() {
			c, err := client.DialToSMTPClientWithContext(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			defer client.CloseWithSMTPClient(c)
			for i := range per {
				m, _ := mailer.Build(int64(i), fmt.Sprintf("p%d@example.fr", i), e)
				if err := client.SendWithSMTPClient(c, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	bareRate := float64(per*conns) / time.Since(start).Seconds()
	mailer.Close()

	// Pipeline: a wave of n people with email, from launch to every email sent.
	env := setupChunks(b, n, nil, 500, 1) // everyone has an email: letters are measured apart
	env.deps.Mailer, _ = notify.NewMailer(notify.SMTPConfig{URL: env.sink.URL(), Connections: conns})
	env.deps.SettleEvery = 20
	if v, err := strconv.Atoi(os.Getenv("ENS_BENCH_SETTLE_EVERY")); err == nil {
		env.deps.SettleEvery = v
	}
	env.sink.SetRule(nil)
	start = time.Now()
	env.runUntilIdle(b)
	secs := time.Since(start).Seconds()
	var emails, letters int64
	var lastEmail time.Time
	env.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE channel = 'email'), count(*) FILTER (WHERE channel = 'letter'),
		max(sent_at) FILTER (WHERE channel = 'email') FROM notice WHERE status = 'sent'`).Scan(&emails, &letters, &lastEmail)
	rate := float64(emails) / lastEmail.Sub(start).Seconds()
	benchutil.Record(b, "emails", map[string]any{
		"bare_go_mail_msgs_per_s": int(bareRate), "pipeline_emails_per_s": int(rate), "ratio": float64(int(rate/bareRate*100)) / 100,
		"target_ratio": 0.7, "connections": conns, "wave_people": env.wave.Created, "settle_every": env.deps.SettleEvery, "emails": emails, "letters": letters,
		"wave_dispatch_seconds": float64(int(secs*100)) / 100,
		"note":                  "emails/s from the start of the worker to the last email accepted; wave_dispatch_seconds until every notice (letters too) is out",
	})
}

// BenchmarkLetters: letter pages through the whole pipeline (River job,
// database, rendering, manifest, SHA-256, atomic files) against bare gofpdf
// rendering the same pages in memory.
func BenchmarkLetters(b *testing.B) {
	jobs.TuneGC()                          // as ens worker runs
	n := benchutil.Size(20_000)            // a few hundred letters per department, as in a real wave
	env := setupChunks(b, n, nil, 500, -1) // nobody has an email: every notice is a letter
	var ns []*notify.Notice
	for i := range int(n) {
		ns = append(ns, &notify.Notice{ID: int64(i), Kind: notify.KindOpposition, FirstName: "Gaëlle", LastName: "Ñúñez",
			Female: true, Code: "ABCD-EFGH-JKMN", Deadline: time.Now(), AddressLines: [4]string{"", "", "12 rue de l'Église", ""},
			Postcode: fmt.Sprintf("75%03d", i%1000), City: "Paris"})
	}
	start := time.Now()
	if _, err := notify.RenderLetters(ns, time.Now()); err != nil {
		b.Fatal(err)
	}
	bare := float64(n) / time.Since(start).Seconds()
	start = time.Now()
	env.runUntilIdle(b)
	secs := time.Since(start).Seconds()
	var letters int64
	env.pool.QueryRow(context.Background(), `SELECT count(*) FROM notice WHERE channel = 'letter' AND status = 'sent'`).Scan(&letters)
	ours := float64(letters) / secs
	var batches, pages, jobErrors int64
	env.pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(pages), 0) FROM letter_batch`).Scan(&batches, &pages)
	env.pool.QueryRow(context.Background(), `SELECT coalesce(sum(cardinality(errors)), 0) FROM river_job`).Scan(&jobErrors)
	benchutil.Record(b, "letters", map[string]any{"letters": letters, "bare_gofpdf_pages_per_s": int(bare),
		"pipeline_pages_per_s": int(ours), "ratio": float64(int(ours/bare*100)) / 100, "target_ratio": 0.7,
		"batches": batches, "pages_recorded": pages, "job_errors": jobErrors,
		"note": "pipeline: from the worker's start to every letter rendered, written and recorded"})
}

func portOf(addr string) int {
	var p int
	fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &p)
	return p
}
