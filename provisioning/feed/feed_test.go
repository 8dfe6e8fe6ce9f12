package feed_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
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

// A change stores its person's NIR as a number: the feed reads every NIR
// back as the person has it, Corsica's 2A and 2B included.
func TestAChangeCarriesItsPersonsNIRAsWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	testdb.LaunchAll(t, pool, 3000, 53, wave.LaunchOptions{})
	rows, err := pool.Query(ctx, `SELECT a.id, p.nir FROM account a JOIN person p ON p.id = a.person_id`)
	if err != nil {
		t.Fatal(err)
	}
	nirs := map[int64]string{}
	var id int64
	var nir string
	if _, err := pgx.ForEachRow(rows, []any{&id, &nir}, func() error { nirs[id] = nir; return nil }); err != nil {
		t.Fatal(err)
	}
	var read, corsica int
	for after := int64(0); ; {
		changes, err := feed.After(ctx, pool, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) == 0 {
			break
		}
		for _, c := range changes {
			if want := nirs[c.AccountID]; c.NIR != want {
				t.Fatalf("change %d of account %d reads NIR %s; want %s", c.Seq, c.AccountID,
					provisioning.NIR(c.NIR).Masked(), provisioning.NIR(want).Masked())
			}
			if c.NIR[6] == 'A' || c.NIR[6] == 'B' {
				corsica++
			}
		}
		read += len(changes)
		after = changes[len(changes)-1].Seq
	}
	if read != len(nirs) || corsica == 0 {
		t.Errorf("the feed read %d changes, %d of people born in Corsica, for %d accounts; want one each, some in Corsica", read, corsica, len(nirs))
	}
}
