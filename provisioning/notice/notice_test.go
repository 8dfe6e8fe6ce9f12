package notice_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/wave"
)

// growingNotices is a launched wave of 3,000 accounts whose email notices
// are created a few at a time, and a worker's connection, which keeps the
// plans it makes while the notice table is small.
type growingNotices struct {
	t           *testing.T
	pool, owner *pgxpool.Pool
	conn        *pgx.Conn
}

func newGrowingNotices(t *testing.T) *growingNotices {
	pool := testdb.Pool(t)
	g := &growingNotices{t: t, pool: pool, owner: testdb.OwnerPool(t, pool)}
	testdb.LaunchAll(t, pool, 3000, 23, wave.LaunchOptions{})
	conn, err := pgx.ConnectConfig(context.Background(), pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	g.conn = conn
	return g
}

// add creates n more pending email notices and returns the last four, as
// accepted now.
func (g *growingNotices) add(n int) []notice.Sent {
	g.t.Helper()
	ctx := context.Background()
	if _, err := g.owner.Exec(ctx, `INSERT INTO notice (account_id, kind, channel)
		SELECT a.id, 'opposition', 'email' FROM account a WHERE NOT EXISTS (SELECT FROM notice n WHERE n.account_id = a.id)
		ORDER BY a.id LIMIT $1`, n); err != nil {
		g.t.Fatal(err)
	}
	rows, err := g.pool.Query(ctx, `SELECT id, account_id FROM notice WHERE status = 'pending' ORDER BY id DESC LIMIT 4`)
	if err != nil {
		g.t.Fatal(err)
	}
	sent, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notice.Sent, error) {
		s := notice.Sent{At: time.Now(), Deadline: time.Now().AddDate(0, 0, 42), RecipientHash: []byte{1}}
		return s, r.Scan(&s.NoticeID, &s.AccountID)
	})
	if err != nil || len(sent) != 4 {
		g.t.Fatalf("reading notices: %v (%d)", err, len(sent))
	}
	return sent
}

// scans runs record on the worker's connection once the table has grown to
// 2,932 notices, and returns how many sequential scans of the notice table
// it made and how many notices it updated (this backend's counts not yet
// reported, which nothing reports before the transaction ends).
func (g *growingNotices) scans(record func(tx pgx.Tx, sent []notice.Sent) error) (seqScans, updated int64) {
	g.t.Helper()
	ctx := context.Background()
	sent := g.add(2900)
	counts := func(tx pgx.Tx) (seqScans, updated int64) {
		if err := tx.QueryRow(ctx, `SELECT seq_scan, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'notice'`).Scan(&seqScans, &updated); err != nil {
			g.t.Fatal(err)
		}
		return seqScans, updated
	}
	err := pgx.BeginFunc(ctx, g.conn, func(tx pgx.Tx) error {
		seq0, upd0 := counts(tx)
		if err := record(tx, sent); err != nil {
			return err
		}
		seqScans, updated = counts(tx)
		seqScans, updated = seqScans-seq0, updated-upd0
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return seqScans, updated
}

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
	g := newGrowingNotices(t)
	// The wave's first emails: the connection plans its record then.
	for range 8 {
		if err := notice.MarkEmailsAccepted(ctx, g.conn, g.add(4)); err != nil {
			t.Fatal(err)
		}
	}
	seqScans, recorded := g.scans(func(tx pgx.Tx, sent []notice.Sent) error {
		return notice.MarkEmailsAccepted(ctx, tx, sent)
	})
	if recorded != 4 || seqScans != 0 {
		t.Errorf("recording 4 accepted emails among 2,932 notices: %d notices updated, %d sequential scans of the notice table; want 4 and 0", recorded, seqScans)
	}
}

// The same for a recipient's temporary refusal (a 4xx, as greylisting
// answers a first contact): each sender records it before it sends again.
func TestTemporaryFailuresAreRecordedByKeyAfterTheTableGrew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGrowingNotices(t)
	for range 8 {
		if err := notice.RecordTemporaryFailure(ctx, g.conn, g.add(4)[0].NoticeID, "451 4.7.1 greylisted", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	seqScans, recorded := g.scans(func(tx pgx.Tx, sent []notice.Sent) error {
		return notice.RecordTemporaryFailure(ctx, tx, sent[0].NoticeID, "451 4.7.1 greylisted", time.Now())
	})
	if recorded != 1 || seqScans != 0 {
		t.Errorf("recording a temporary failure among 2,932 notices: %d notices updated, %d sequential scans of the notice table; want 1 and 0", recorded, seqScans)
	}
}
