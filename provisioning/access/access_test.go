package access

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

// What is held about a person is read by their account, not by reading
// every account's changes: the export read the whole change feed, two rows
// for every person ever notified (at 65 million, a read of about 12 GB for
// one person's request).
func TestAnExportReadsOnlyThePersonsChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	testdb.LaunchAll(t, pool, 3000, 43, wave.LaunchOptions{})
	// The feed as production's autovacuum leaves it: analysed.
	if _, err := testdb.OwnerPool(t, pool).Exec(ctx, `ANALYZE account_change`); err != nil {
		t.Fatal(err)
	}
	var nir string
	if err := pool.QueryRow(ctx, `SELECT p.nir FROM person p JOIN account a ON a.person_id = p.id ORDER BY a.id OFFSET 1500 LIMIT 1`).Scan(&nir); err != nil {
		t.Fatal(err)
	}
	scans := func(tx pgx.Tx) (n int64) {
		if err := tx.QueryRow(ctx, `SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'account_change'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	out := &Export{}
	var seqScans int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		before := scans(tx)
		if err := out.read(ctx, tx, testdb.Store(pool), provisioning.NIR(nir), "dpo"); err != nil {
			return err
		}
		seqScans = scans(tx) - before
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.States) != 1 || seqScans != 0 {
		t.Errorf("exporting a person among 3,000: %d changes read, %d sequential scans of the change feed; want 1 and 0", len(out.States), seqScans)
	}
}
