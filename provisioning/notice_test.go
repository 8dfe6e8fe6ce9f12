package provisioning_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
)

// An accepted email is recorded by its notice's key however the notice table
// has grown since the statement was planned: a worker's connection keeps the
// plan it made when the wave's first notices existed, and nothing makes it
// plan again until autovacuum analyses the table (once a minute at best).
// Planned as a hash join over a sequential scan of a small table, the record
// of four accepted emails read every notice of the wave: 3 ms a record on a
// 100,000-person wave, 44 s of the database's time in all, and worse as the
// wave grows.
func TestAcceptedEmailsAreRecordedByKeyAfterTheTableGrew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	owner := testdb.OwnerPool(t, pool)
	launchAll(t, pool, 3000, 23, provisioning.LaunchOptions{})
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	notices := func(n int) []provisioning.Sent {
		t.Helper()
		if _, err := owner.Exec(ctx, `INSERT INTO notice (account_id, kind, channel)
			SELECT a.id, 'opposition', 'email' FROM account a WHERE NOT EXISTS (SELECT FROM notice n WHERE n.account_id = a.id)
			ORDER BY a.id LIMIT $1`, n); err != nil {
			t.Fatal(err)
		}
		rows, err := pool.Query(ctx, `SELECT id, account_id FROM notice WHERE status = 'pending' ORDER BY id DESC LIMIT 4`)
		if err != nil {
			t.Fatal(err)
		}
		sent, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (provisioning.Sent, error) {
			s := provisioning.Sent{At: time.Now(), Deadline: time.Now().AddDate(0, 0, 42), RecipientHash: []byte{1}}
			return s, r.Scan(&s.NoticeID, &s.AccountID)
		})
		if err != nil || len(sent) != 4 {
			t.Fatalf("reading notices: %v (%d)", err, len(sent))
		}
		return sent
	}
	// The wave's first emails: the connection plans its record then.
	for range 8 {
		if err := provisioning.MarkEmailsAccepted(ctx, conn, notices(4)); err != nil {
			t.Fatal(err)
		}
	}
	sent := notices(2900)
	// This backend's counts not yet reported, which no transaction's end
	// reports until it ends.
	counts := func(tx pgx.Tx) (seqScans, updated int64) {
		t.Helper()
		if err := tx.QueryRow(ctx, `SELECT seq_scan, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'notice'`).Scan(&seqScans, &updated); err != nil {
			t.Fatal(err)
		}
		return seqScans, updated
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		seq0, upd0 := counts(tx)
		if err := provisioning.MarkEmailsAccepted(ctx, tx, sent); err != nil {
			return err
		}
		seqScans, recorded := counts(tx)
		seqScans, recorded = seqScans-seq0, recorded-upd0
		if recorded != 4 || seqScans != 0 {
			t.Errorf("recording 4 accepted emails among 2,932 notices: %d notices updated, %d sequential scans of the notice table; want 4 and 0", recorded, seqScans)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
