package jobs_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jung-kurt/gofpdf"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
)

// benchRounds: each benchmark alternates the raw tool and the pipeline
// this many times and reports the median round, since one sample of either
// moves by ±15% on two shared cores.
const benchRounds = 5

// round is one raw-tool run and one pipeline run, back to back.
type round struct {
	Raw      float64 `json:"raw_per_s"`
	Pipeline float64 `json:"pipeline_per_s"`
	Ratio    float64 `json:"ratio"`
}

// rounds runs benchRounds rounds and returns them with the median one.
func rounds(run func() (raw, pipeline float64)) ([]round, round) {
	var rs []round
	for range benchRounds {
		raw, pipe := run()
		rs = append(rs, round{Raw: float64(int(raw)), Pipeline: float64(int(pipe)), Ratio: float64(int(pipe/raw*100)) / 100})
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b round) int { return cmp.Compare(a.Ratio, b.Ratio) })
	return rs, sorted[len(sorted)/2]
}

// BenchmarkEmails: notices through the whole pipeline (River jobs, database,
// rendering, SMTP) against a bare go-mail loop sending the same messages to
// the same sink over the same number of connections — DKIM-signed on both
// sides (RSA 2048, go-mail's signer, as ens worker with ENS_DKIM_KEY_FILE),
// then unsigned on both sides.
func BenchmarkEmails(b *testing.B) {
	jobs.TuneGC() // as ens worker runs
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	signed := emailRounds(b, keyPEM)
	unsigned := emailRounds(b, nil)
	benchutil.Record(b, "emails", map[string]any{"dkim": signed, "no_dkim": unsigned,
		"ratio": signed["ratio"], "ratio_without_dkim": unsigned["ratio"], "target_ratio": 0.7,
		"dkim_cost": fmt.Sprintf("pipeline %.0f/s signed against %.0f/s unsigned", signed["pipeline_emails_per_s"], unsigned["pipeline_emails_per_s"])})
}

// emailRounds measures the email pipeline against bare go-mail, both
// signing with keyPEM when it is set.
func emailRounds(b *testing.B, keyPEM []byte) map[string]any {
	n := benchutil.Size(20_000)
	const conns = 4
	settleEvery := jobs.DefaultSettleEvery
	if v, err := strconv.Atoi(os.Getenv("ENS_BENCH_SETTLE_EVERY")); err == nil {
		settleEvery = v
	}
	var emails, letters, people int64
	var dispatch float64
	all, median := rounds(func() (float64, float64) {
		bare := bareEmails(b, n, conns, keyPEM)
		// Pipeline: a wave of n people with email, from the worker's start to
		// the last email accepted.
		env := setupChunks(b, n, nil, 500, 1) // everyone has an email: letters are measured apart
		env.deps.Mailer, _ = notify.NewMailer(notify.SMTPConfig{URL: env.sink.URL(), Connections: conns, Key: testKey.MailKey(),
			DKIMKeyPEM: keyPEM, DKIMSelector: "bench"})
		defer env.deps.Mailer.Close()
		env.deps.SettleEvery = settleEvery
		env.sink.SetRule(nil)
		people = env.wave.Created
		start := time.Now()
		env.runUntilIdle(b)
		dispatch = time.Since(start).Seconds()
		var lastEmail time.Time
		env.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE channel = 'email'), count(*) FILTER (WHERE channel = 'letter'),
			max(sent_at) FILTER (WHERE channel = 'email') FROM notice WHERE status = 'sent'`).Scan(&emails, &letters, &lastEmail)
		return bare, float64(emails) / lastEmail.Sub(start).Seconds()
	})
	return map[string]any{
		"bare_go_mail_msgs_per_s": median.Raw, "pipeline_emails_per_s": median.Pipeline, "ratio": median.Ratio, "rounds": all,
		"connections": conns, "wave_people": people, "settle_every": settleEvery, "emails": emails, "letters": letters,
		"wave_dispatch_seconds": float64(int(dispatch*100)) / 100, "dkim": keyPEM != nil,
		"note": "median of the rounds' ratios; emails/s from the start of the worker to the last email accepted; " +
			"wave_dispatch_seconds (last round) until every notice is out",
	}
}

// bareEmails sends n copies of a rendered notice with go-mail alone, over
// conns connections to a fresh sink, signing them when keyPEM is set, and
// returns messages per second.
func bareEmails(b *testing.B, n int64, conns int, keyPEM []byte) float64 {
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	rate, err := benchutil.BareEmails(sink.Addr(), n, conns, testKey.MailKey(), keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	return rate
}

// BenchmarkLetters: letter pages through the whole pipeline (River job,
// database, rendering, manifest, SHA-256, atomic files) against bare gofpdf
// rendering the same pages in memory.
func BenchmarkLetters(b *testing.B) {
	jobs.TuneGC()               // as ens worker runs
	n := benchutil.Size(20_000) // a few hundred letters per department, as in a real wave
	var ns []*notify.Notice
	for i := range int(n) {
		ns = append(ns, &notify.Notice{ID: int64(i), Kind: notify.KindOpposition, FirstName: "Gaëlle", LastName: "Ñúñez",
			Female: true, Code: "ABCD-EFGH-JKMN", Deadline: time.Now(), AddressLines: [4]string{"", "", "12 rue de l'Église", ""},
			Postcode: fmt.Sprintf("75%03d", i%1000), City: "Paris"})
	}
	var letters, batches, pages, jobErrors int64
	var chunkPhase, renderPhase float64
	all, median := rounds(func() (float64, float64) {
		env := setupChunks(b, n, nil, 500, -1) // nobody has an email: every notice is a letter
		settle(b, env)
		start := time.Now()
		if _, err := notify.RenderLetters(ns, time.Now(), fixtures.LetterInfo); err != nil {
			b.Fatal(err)
		}
		bare := float64(n) / time.Since(start).Seconds()
		start = time.Now()
		env.runUntilIdle(b)
		ctx := context.Background()
		// Until the last batch was recorded: River stamps a job finalized as
		// its Work returns, after the batch's transaction committed.
		var last, chunksDone time.Time
		env.pool.QueryRow(ctx, `SELECT max(finalized_at) FILTER (WHERE kind = $1), max(finalized_at) FILTER (WHERE kind = $2) FROM river_job`,
			jobs.RenderLettersArgs{}.Kind(), jobs.NotifyChunkArgs{}.Kind()).Scan(&last, &chunksDone)
		chunkPhase, renderPhase = chunksDone.Sub(start).Seconds(), last.Sub(chunksDone).Seconds()
		env.pool.QueryRow(ctx, `SELECT count(*) FROM notice WHERE channel = 'letter' AND status = 'printed'`).Scan(&letters)
		env.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(pages), 0) FROM letter_batch`).Scan(&batches, &pages)
		env.pool.QueryRow(ctx, `SELECT coalesce(sum(cardinality(errors)), 0) FROM river_job`).Scan(&jobErrors)
		return bare, float64(letters) / last.Sub(start).Seconds()
	})
	core, utf8 := fontCost(b, 2000)
	benchutil.Record(b, "letters", map[string]any{"letters": letters, "bare_gofpdf_pages_per_s": median.Raw,
		"font_cost": map[string]any{"bare_gofpdf_core_helvetica_pages_per_s": core, "bare_gofpdf_noto_utf8_pages_per_s": utf8,
			"utf8_over_core": float64(int(utf8/core*100)) / 100,
			"note":           "the same text page, gofpdf alone: core Helvetica/Courier (cp1252) against embedded Noto Sans/Sans Mono (UTF-8, subset)"},
		"pipeline_pages_per_s": median.Pipeline, "ratio": median.Ratio, "rounds": all, "target_ratio": 0.7,
		"batches": batches, "pages_recorded": pages, "job_errors": jobErrors,
		"chunks_seconds": float64(int(chunkPhase*100)) / 100, "renders_after_chunks_seconds": float64(int(renderPhase*100)) / 100,
		"note": "median of the rounds' ratios; each round starts from a settled database (VACUUM ANALYZE, CHECKPOINT, GC); " +
			"bare: one PDF of every page in memory; pipeline: from the worker's start to the last batch rendered, written and recorded (last round's counts)"})
}

// fontCost renders n pages of the same text with gofpdf alone, in its core
// fonts (cp1252) and in the letters' UTF-8 TrueType fonts, and returns
// pages per second for each.
func fontCost(b *testing.B, n int) (core, utf8 float64) {
	text := strings.Repeat("Votre profil Mon espace santé va être créé. Si vous ne le souhaitez pas, vous pouvez vous y opposer. ", 12)
	run := func(setup func(*gofpdf.Fpdf) (string, string), tr func(string) string) float64 {
		start := time.Now()
		pdf := gofpdf.New("P", "mm", "A4", "")
		pdf.SetCompression(true)
		body, fixed := setup(pdf)
		for range n {
			pdf.AddPage()
			pdf.SetFont(fixed, "", 10)
			for l := range 6 {
				pdf.SetXY(100, 47+4.5*float64(l))
				pdf.CellFormat(95, 4.5, tr("MME Gaëlle ÑÚÑEZ"), "", 0, "L", false, 0, "")
			}
			pdf.SetFont(body, "", 10.5)
			pdf.SetXY(20, 100)
			pdf.MultiCell(170, 5.2, tr(text), "", "L", false)
		}
		if err := pdf.Output(io.Discard); err != nil {
			b.Fatal(err)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	core = run(func(*gofpdf.Fpdf) (string, string) { return "Helvetica", "Courier" },
		gofpdf.New("P", "mm", "A4", "").UnicodeTranslatorFromDescriptor(""))
	utf8 = run(func(pdf *gofpdf.Fpdf) (string, string) {
		for _, f := range []struct{ family, file string }{{"S", "NotoSans-Regular.ttf"}, {"M", "NotoSansMono-Regular.ttf"}} {
			raw, err := os.ReadFile(filepath.Join(benchutil.Root(), "notify", "fonts", f.file))
			if err != nil {
				b.Fatal(err)
			}
			pdf.AddUTF8FontFromBytes(f.family, "", raw)
		}
		return "S", "M"
	}, func(s string) string { return s })
	return float64(int(core)), float64(int(utf8))
}

// settle lets the setup's aftermath (autovacuum of fresh tables, a
// checkpoint, garbage) finish before a measurement rather than during it:
// measured without it, bare gofpdf read anywhere from 4,200 to 9,000 pages/s.
func settle(b *testing.B, e *env) {
	ctx := context.Background()
	owner := testdb.OwnerPool(b, e.pool) // VACUUM and CHECKPOINT are the owner's
	for _, q := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
		if _, err := owner.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
}
