package feed_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning/feed"
	"github.com/ens-sante/ens/provisioning/wave"
)

// The feed has no B-tree on its numbers: a reader's range is found through
// its block-range index, wherever it starts, never by reading the whole
// feed (at 65 million people, 130 million changes).
func TestReadingTheFeedReadsOnlyTheRangeAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	testdb.LaunchAll(t, pool, 3000, 47, wave.LaunchOptions{})
	// The feed as production's autovacuum leaves it: analysed.
	if _, err := testdb.OwnerPool(t, pool).Exec(ctx, `ANALYZE account_change`); err != nil {
		t.Fatal(err)
	}
	var head int64
	if err := pool.QueryRow(ctx, `SELECT seq FROM account_feed_head`).Scan(&head); err != nil || head < 2900 {
		t.Fatalf("the feed's head: %d, %v", head, err)
	}
	for _, c := range []struct {
		after int64
		limit int
		want  int
	}{
		{0, 100, 100},
		{head / 2, 250, 250},
		{head - 10, 100, 10},
		{head, 100, 0},
		{-5, 10, 10},
	} {
		var got []feed.Change
		var seqScans int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			scans := func() (n int64) {
				if err := tx.QueryRow(ctx, `SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'account_change'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before := scans()
			var err error
			got, err = feed.After(ctx, tx, c.after, c.limit)
			seqScans = scans() - before
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		first := max(c.after, 0) + 1
		for i, ch := range got {
			if ch.Seq != first+int64(i) || ch.NIR == "" || ch.Change != "created" {
				t.Fatalf("reading %d after %d: change %d is %d %q; want %d, created", c.limit, c.after, i, ch.Seq, ch.Change, first+int64(i))
			}
		}
		if len(got) != c.want || seqScans != 0 {
			t.Errorf("reading %d after %d of %d: %d changes, %d sequential scans of the feed; want %d and none",
				c.limit, c.after, head, len(got), seqScans, c.want)
		}
	}
}
