package wave_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/archive"
	"github.com/ens-sante/ens/provisioning/wave"
)

// BenchmarkImportAndLaunch measures `ens registry import` against a plain
// psql \copy of the same file, then wave launch with and without the audit
// log, then archiving and purging.
func BenchmarkImportAndLaunch(b *testing.B) {
	ctx := context.Background()
	rows := benchutil.Size(1_000_000)
	path := filepath.Join(b.TempDir(), "registry.csv")
	f, _ := os.Create(path)
	if err := fixtures.WriteRegistry(f, fixtures.RegistryOptions{Count: rows, Seed: 1, RejectShare: -1}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	ens := filepath.Join(benchutil.Root(), "bin", "ens")
	if _, err := os.Stat(ens); err != nil {
		b.Skip("bin/ens not built: run make bench")
	}

	// Raw: psql \copy of the same file, into a table of text columns with
	// no key (the floor: bytes in, nothing checked), then into a table shaped
	// like person (the file's columns with person's types, checks and keys).
	rawURL := testdb.OwnerURL(testdb.URL(b)) // tables of its own: the owner's
	psql := func(args ...string) {
		b.Helper()
		if out, err := exec.Command("psql", append([]string{rawURL, "-q"}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("psql: %v %s", err, out)
		}
	}
	psql("-c", `CREATE TABLE raw_text (nir text, last_name text, first_name text, birth_date text,
		email text, address_line2 text, address_line3 text, address_line4 text, address_line5 text, postcode text, city text,
		country text, guardian_nir text, death_date text)`,
		"-c", `CREATE TABLE raw_keyed (id bigserial PRIMARY KEY, nir text COLLATE "C" NOT NULL UNIQUE CHECK (length(nir) = 15),
		last_name text NOT NULL, first_name text NOT NULL, birth_date date NOT NULL, email text, address_line2 text,
		address_line3 text, address_line4 text, address_line5 text, postcode text, city text, country text,
		guardian_nir text COLLATE "C" CHECK (guardian_nir IS NULL OR length(guardian_nir) = 15), death_date date)`)
	timed := func(run func()) float64 {
		start := time.Now()
		run()
		return time.Since(start).Seconds()
	}
	rawSecs := timed(func() { psql("-c", fmt.Sprintf(`\copy raw_text FROM '%s' CSV HEADER`, path)) })
	keyedSecs := timed(func() {
		psql("-c", fmt.Sprintf(`\copy raw_keyed (nir, last_name, first_name, birth_date, email, address_line2, address_line3,
			address_line4, address_line5, postcode, city, country, guardian_nir, death_date) FROM '%s' CSV HEADER`, path))
	})

	// ens registry import, as a separate process, for its peak RSS; then the
	// same file again, the monthly case where everyone is already known.
	url := testdb.URL(b)
	importFile := func() (float64, float64, map[string]any) {
		cmd := exec.Command(ens, "--database-url", url, "--log-format", "json", "registry", "import", path, "--json")
		var res map[string]any
		secs := timed(func() {
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("ens registry import: %v %s", err, out)
			}
			if err := json.Unmarshal(out, &res); err != nil {
				b.Fatalf("ens registry import --json: %v", err)
			}
		})
		return secs, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024, res
	}
	ensSecs, rssMB, first := importFile()
	againSecs, againRSS, again := importFile()
	perSec := func(secs float64) int { return int(float64(rows) / secs) }
	benchutil.Record(b, "import", map[string]any{
		"rows": rows, "command": "ens registry import FILE --json",
		"psql_copy_rows_per_s": perSec(rawSecs), "psql_copy_keyed_rows_per_s": perSec(keyedSecs),
		"ens_import_rows_per_s": perSec(ensSecs), "ratio": round(rawSecs / ensSecs), "target_ratio": 0.5,
		"ratio_vs_keyed_table": round(keyedSecs / ensSecs), "phases_s": first["phases_s"],
		"reimport_rows_per_s": perSec(againSecs), "reimport_ratio": round(rawSecs / againSecs),
		"reimport_phases_s": again["phases_s"], "reimport_unchanged": again["unchanged"],
		"peak_rss_mb": round(max(rssMB, againRSS)), "target_peak_rss_mb": 300,
		"note": "ratio: against psql \\copy into a keyless text table; ratio_vs_keyed_table: into a table with person's types, checks and keys",
	})

	// Wave launch on the imported people, with and without the audit log,
	// each on its own identical copy of the imported database.
	if out, err := exec.Command("psql", testdb.OwnerURL(url), "-qc", "VACUUM ANALYZE").CombinedOutput(); err != nil {
		b.Fatalf("vacuum: %v %s", err, out)
	}
	cloneURL := testdb.Clone(b, url)
	spreadURL := testdb.Clone(b, url)

	// What `wave launch --dry-run` reads, on the whole registry.
	previewPool, err := provisioning.OpenPool(ctx, url, 2)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	pv, err := wave.DryRun(ctx, previewPool, provisioning.WaveSpec{Name: "preview"}, wave.PreviewOptions{})
	if err != nil {
		b.Fatal(err)
	}
	previewSecs := time.Since(start).Seconds()
	previewPool.Close()
	benchutil.Record(b, "wave_dry_run", map[string]any{"people": rows, "accounts_it_would_create": pv.Accounts,
		"seconds": round(previewSecs), "target_seconds": 10})

	// --per-day 100000 on a 300,000-person wave, under a clock fixed on a
	// launch day: the notice jobs are scheduled on three days.
	spreadPool, err := provisioning.OpenPool(ctx, spreadURL, 4)
	if err != nil {
		b.Fatal(err)
	}
	var spread []provisioning.Chunk
	launchDay := time.Date(2027, 1, 4, 9, 0, 0, 0, provisioning.Paris)
	sres, err := wave.Launch(ctx, testdb.Store(spreadPool).At(func() time.Time { return launchDay }), provisioning.WaveSpec{Name: "spread", Actor: "bench",
		Limit: min(rows, 300_000), PerDay: 100_000}, testdb.CollectChunks(&spread),
		wave.LaunchOptions{})
	if err != nil {
		b.Fatal(err)
	}
	spreadPool.Close()
	perDay := map[string]int64{}
	for _, c := range spread {
		day := launchDay
		if !c.NotBefore.IsZero() {
			day = c.NotBefore
		}
		perDay[day.In(provisioning.Paris).Format(time.DateOnly)] += c.LastAccountID - c.FirstAccountID + 1
	}
	benchutil.Record(b, "wave_per_day", map[string]any{"accounts": sres.Created, "per_day": 100_000,
		"accounts_by_dispatch_day": perDay, "days": len(perDay), "launch_seconds": round(sres.Duration.Seconds()),
		"note": "account ids are contiguous within a launch here, so a chunk's id range counts its accounts"})
	var chunks []provisioning.Chunk
	launch := func(dbURL string, noAudit bool) (float64, *pgxpool.Pool) {
		pool, err := provisioning.OpenPool(ctx, dbURL, 4)
		if err != nil {
			b.Fatal(err)
		}
		chunks = chunks[:0]
		res, err := wave.Launch(ctx, testdb.Store(pool), provisioning.WaveSpec{Name: "bench", Actor: "bench", Limit: rows},
			testdb.CollectChunks(&chunks), wave.LaunchOptions{NoAudit: noAudit})
		if err != nil {
			b.Fatal(err)
		}
		return res.Duration.Seconds(), pool
	}
	noAuditSecs, other := launch(cloneURL, true)
	other.Close()
	auditSecs, pool := launch(url, false)
	defer pool.Close()
	benchutil.Record(b, "wave_launch", map[string]any{
		"accounts": rows, "seconds": round(auditSecs), "accounts_per_s": int(float64(rows) / auditSecs), "target_seconds": 60,
		"seconds_without_audit": round(noAuditSecs), "audit_overhead_pct": round(100 * (auditSecs - noAuditSecs) / noAuditSecs),
		"target_audit_overhead_pct": 15, "note": "job insertion excluded (measured with the notice pipeline)",
	})

	// Archive and purge 100,000 active accounts.
	n := min(benchutil.Size(100_000), rows)
	if _, err := pool.Exec(ctx, `UPDATE account SET state = 'notified', notified_at = now(), deadline = now() + interval '1 day'
		WHERE id IN (SELECT id FROM account WHERE state = 'pending' ORDER BY id LIMIT $1)`, n); err != nil {
		b.Fatal(err)
	}
	pool.Exec(ctx, `UPDATE account SET state = 'active', activated_at = now() WHERE state = 'notified'`)
	var ids []int64
	pool.QueryRow(ctx, `SELECT array_agg(id) FROM account WHERE state = 'active'`).Scan(&ids)
	start = time.Now()
	if _, err := archive.ArchiveAccounts(ctx, testdb.Store(pool), ids, archive.ReasonRequest, "bench"); err != nil {
		b.Fatal(err)
	}
	archiveSecs := time.Since(start).Seconds()
	later := provisioning.Clock(func() time.Time { return time.Now().AddDate(10, 0, 1) })
	start = time.Now()
	res, err := archive.Purge(ctx, testdb.Store(pool).At(later), []byte("bench-key-bench-key-bench-key-32"), false)
	if err != nil {
		b.Fatal(err)
	}
	purgeSecs := time.Since(start).Seconds()
	benchutil.Record(b, "archive_purge", map[string]any{
		"archived": len(ids), "archive_seconds": round(archiveSecs), "purged": res.Purged, "purge_seconds": round(purgeSecs),
	})
}

func round(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
