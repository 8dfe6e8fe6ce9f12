package reconcile_test

import (
	"context"
	"encoding/csv"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/reconcile"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// BenchmarkReconcile: ens reconcile on a 1,000,000-person wave whose
// notices all went out — 70% by email, 30% by letters in batches of 5,000
// with their manifests, all posted (target: under 30 s).
func BenchmarkReconcile(b *testing.B) {
	ctx := context.Background()
	pool := testdb.Pool(b)
	n := benchutil.Size(1_000_000)
	testdb.Import(b, pool, fixtures.RegistryOptions{Count: n, Seed: 1, RejectShare: -1})
	testdb.Launch(b, pool, provisioning.WaveSpec{Name: "w1", Actor: "bench"})
	// What the notice workers and the printer would leave: every account
	// notified with its code, one sent notice each.
	for _, q := range []string{
		`UPDATE account SET state = 'notified', notified_at = now() - interval '50 days', deadline = now() - interval '1 day',
			code_hash = substring(sha256(id::text::bytea) FROM 1 FOR 8) WHERE state = 'pending'`,
		`INSERT INTO letter_batch (id, wave_id, department, file, manifest, sha256, pages, rendered_at, posted_on, posted_by, acknowledged_at)
			SELECT g, 1, '75', 'batch-' || g || '.pdf', $1 || '/batch-' || g || '.manifest.csv', 'x', 5000,
			       now() - interval '50 days', (now() - interval '49 days')::date, 'bench', now() - interval '49 days'
			FROM generate_series(1, (SELECT count(*) FROM account WHERE id % 10 < 3) / 5000 + 1) g`,
		`INSERT INTO notice (account_id, kind, channel, status, sent_at, deadline, recipient_hash, department, batch_id, page)
			SELECT a.id, CASE WHEN a.state = 'active' THEN 'information' ELSE 'opposition' END,
			       CASE WHEN a.id % 10 < 3 THEN 'letter' ELSE 'email' END, 'sent', now() - interval '49 days',
			       CASE WHEN a.state = 'active' THEN NULL ELSE a.deadline END,
			       CASE WHEN a.id % 10 < 3 THEN NULL ELSE '\x00'::bytea END, '75',
			       CASE WHEN a.id % 10 < 3 THEN (row_number() OVER (PARTITION BY a.id % 10 < 3 ORDER BY a.id) - 1) / 5000 + 1 END,
			       CASE WHEN a.id % 10 < 3 THEN ((row_number() OVER (PARTITION BY a.id % 10 < 3 ORDER BY a.id) - 1) % 5000) + 1 END
			FROM account a`,
		`UPDATE account SET state = 'active', activated_at = now() WHERE state = 'notified'`,
	} {
		args := []any{}
		if len(q) > 30 && q[:30] == "INSERT INTO letter_batch (id, " {
			args = append(args, b.TempDir())
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%.60s: %v", q, err)
		}
	}
	if _, err := testdb.OwnerPool(b, pool).Exec(ctx, `VACUUM ANALYZE`); err != nil { // the owner's
		b.Fatal(err)
	}
	writeManifests(b, pool)
	var accounts int64
	pool.QueryRow(ctx, `SELECT count(*) FROM account`).Scan(&accounts)
	start := time.Now()
	r, err := reconcile.Wave(ctx, pool, "w1")
	if err != nil {
		b.Fatal(err)
	}
	secs := time.Since(start).Seconds()
	if !r.Clean {
		for _, c := range r.Checks {
			if c.Count > 0 {
				b.Logf("%s: %d %v", c.Name, c.Count, c.Examples)
			}
		}
		b.Fatal("the synthetic wave does not reconcile")
	}
	benchutil.Record(b, "reconcile", map[string]any{"accounts": accounts, "seconds": float64(int(secs*100)) / 100, "target_seconds": 30,
		"checks": len(r.Checks), "note": "ens reconcile's checks on a wave whose every notice went out (70% emails, 30% posted letters with manifests)"})
}

// writeManifests writes each batch's manifest from its notices.
func writeManifests(b *testing.B, pool *pgxpool.Pool) {
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT b.manifest, n.id, n.page FROM letter_batch b JOIN notice n ON n.batch_id = b.id ORDER BY b.id, n.page`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var f *os.File
	var w *csv.Writer
	current := ""
	flush := func() {
		if w != nil {
			w.Flush()
			f.Close()
		}
	}
	for rows.Next() {
		var manifest string
		var id int64
		var page int
		if err := rows.Scan(&manifest, &id, &page); err != nil {
			b.Fatal(err)
		}
		if manifest != current {
			flush()
			if f, err = os.Create(manifest); err != nil {
				b.Fatal(err)
			}
			w = csv.NewWriter(f)
			w.Write([]string{"notice_id", "postcode", "page"}) //nolint:errcheck
			current = manifest
		}
		w.Write([]string{strconv.FormatInt(id, 10), "75001", strconv.Itoa(page)}) //nolint:errcheck
	}
	flush()
}
