package notice_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
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
		s := notice.Sent{At: time.Now(), Deadline: time.Now().AddDate(0, 0, 42), RecipientHash: []byte("8 bytes.")}
		return s, r.Scan(&s.NoticeID, &s.AccountID)
	})
	if err != nil || len(sent) != 4 {
		g.t.Fatalf("reading notices: %v (%d)", err, len(sent))
	}
	return sent
}

// tableCounts are what a transaction did to the notice table.
type tableCounts struct {
	seqScans, updated, hot int64
}

// scans runs record on the worker's connection once the table has grown to
// 2,932 notices, and returns how many sequential scans of the notice table
// it made and how many notices it updated, in all and in place (this
// backend's counts not yet reported, which nothing reports before the
// transaction ends).
func (g *growingNotices) scans(record func(tx pgx.Tx, sent []notice.Sent) error) tableCounts {
	g.t.Helper()
	ctx := context.Background()
	sent := g.add(2900)
	counts := func(tx pgx.Tx) (c tableCounts) {
		if err := tx.QueryRow(ctx, `SELECT seq_scan, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'notice'`).
			Scan(&c.seqScans, &c.updated, &c.hot); err != nil {
			g.t.Fatal(err)
		}
		return c
	}
	var done tableCounts
	err := pgx.BeginFunc(ctx, g.conn, func(tx pgx.Tx) error {
		before := counts(tx)
		if err := record(tx, sent); err != nil {
			return err
		}
		after := counts(tx)
		done = tableCounts{after.seqScans - before.seqScans, after.updated - before.updated, after.hot - before.hot}
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return done
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
	c := g.scans(func(tx pgx.Tx, sent []notice.Sent) error {
		return notice.MarkEmailsAccepted(ctx, tx, sent)
	})
	if c.updated != 4 || c.seqScans != 0 {
		t.Errorf("recording 4 accepted emails among 2,932 notices: %d notices updated, %d sequential scans of the notice table; want 4 and 0", c.updated, c.seqScans)
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
	c := g.scans(func(tx pgx.Tx, sent []notice.Sent) error {
		return notice.RecordTemporaryFailure(ctx, tx, sent[0].NoticeID, "451 4.7.1 greylisted", time.Now())
	})
	if c.updated != 1 || c.seqScans != 0 {
		t.Errorf("recording a temporary failure among 2,932 notices: %d notices updated, %d sequential scans of the notice table; want 1 and 0", c.updated, c.seqScans)
	}
}

// Recording an accepted email changes no indexed column of its notice, so
// PostgreSQL updates it in place (a HOT update): no new entry in the notice's
// primary key nor in its unique key. An index whose predicate read the
// notice's status (the pending follow-ups') made every record a new row
// version indexed twice over: on a 5,000,000-person wave the notices'
// primary and unique keys took 114 B a person, 92 B since.
func TestAcceptedEmailsAreRecordedInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGrowingNotices(t)
	c := g.scans(func(tx pgx.Tx, sent []notice.Sent) error {
		return notice.MarkEmailsAccepted(ctx, tx, sent)
	})
	if c.updated != 4 || c.hot != 4 {
		t.Errorf("recording 4 accepted emails: %d notices updated, %d of them in place; want 4 and 4", c.updated, c.hot)
	}
}

// codeKey derives the codes, and the recipients' hashes, of the accounts
// notifiedWave notifies.
var codeKey = optout.Key(bytes.Repeat([]byte{7}, optout.MinKeyBytes))

// notifiedWave is a launched wave of 3,000 people whose opposition emails
// were all accepted and their accounts moved to notified, chunk by chunk, as
// the workers do, with the code and recipient hashes the workers store.
func notifiedWave(t *testing.T) *growingNotices {
	ctx := context.Background()
	g := newGrowingNotices(t)
	g.add(3000)
	w, err := provisioning.GetWave(ctx, g.pool, "w")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := g.pool.Query(ctx, `SELECT id, account_id FROM notice ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, provisioning.Paris)
	sent, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notice.Sent, error) {
		var id, account int64
		err := r.Scan(&id, &account)
		s := notice.Accepted(w, id, account, provisioning.NoticeOpposition, at)
		s.CodeHash = codeKey.LookupHash(codeKey.Derive(account))
		s.RecipientHash = notify.RecipientHash(codeKey.MailKey(), fmt.Sprintf("personne%d@example.fr", account))
		return s, err
	})
	if err != nil || len(sent) < 2900 {
		t.Fatalf("reading notices: %v (%d)", err, len(sent))
	}
	// As the workers do: a chunk's emails recorded, then its accounts moved.
	for c := range slices.Chunk(sent, 100) {
		if err := notice.MarkEmailsAccepted(ctx, g.pool, c); err != nil {
			t.Fatal(err)
		}
		if err := notice.SettleAccepted(ctx, testdb.Store(g.pool), w, c); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// A wave's notified accounts cost their indexes a few bytes each: the
// accounts of a wave and state, and the notified ones of a deadline (a day's
// notices share it), are stored once with the list of their rows, and codes
// are looked up through a hash index. Indexed by (wave, state, id),
// (deadline, id) and the 32-byte lookup hash, the three took 188 B a person
// on a 5,000,000-person wave; 57 B since. The codes' hash index fills its
// pages before it splits a bucket: 58 B a notified account here when it
// split them three quarters full, 38 B since.
func TestNotifiedAccountsAreIndexedCompactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := notifiedWave(t)
	var wave, deadline, code float64
	if err := g.owner.QueryRow(ctx, `SELECT pg_relation_size('account_wave_state_idx')::float8 / n, pg_relation_size('account_deadline_idx')::float8 / n,
		pg_relation_size('account_code_hash_idx')::float8 / n FROM (SELECT count(*) AS n FROM account WHERE state = 'notified') c`).Scan(&wave, &deadline, &code); err != nil {
		t.Fatal(err)
	}
	// At this size the hash index's first buckets are mostly room to grow:
	// 38 B a person here, 30 B at 100,000 people.
	if wave+deadline+code > 120 || code > 42 {
		t.Errorf("a notified account takes %.0f B in its wave's index, %.0f B in the deadlines' and %.0f B in the codes'; want at most 120 B in all, 42 in the codes'",
			wave, deadline, code)
	}
}

// Whether follow-up emails wait is asked before every batch of them, while
// a wave's first notices go out: the answer comes from the pending
// follow-ups' index, never from a scan of the wave's accounts or notices.
func TestFollowUpsAreFoundWithoutReadingTheWave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := notifiedWave(t)
	err := pgx.BeginFunc(ctx, g.conn, func(tx pgx.Tx) error {
		scans := func() (n int64) {
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables WHERE relname IN ('account', 'notice')`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := scans()
		ready, err := notice.FollowUpsReady(ctx, tx)
		if err != nil {
			return err
		}
		if n := scans() - before; ready || n != 0 {
			t.Errorf("follow-ups waiting in a wave of 3,000 notified accounts: %v, with %d sequential scans; want none and none", ready, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Moving a chunk's accounts to notified checks their transitions once for
// the statement, not once per account: before, each account ran the
// transition trigger and the foreign key's check of its new state, which
// locked the state's row in account_state for every transaction of the wave.
// A transition the schema does not allow is still refused.
func TestAChunksAccountsAreCheckedOncePerStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	owner := testdb.OwnerPool(t, pool)
	testdb.LaunchAll(t, pool, 300, 31, wave.LaunchOptions{})
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		// Counting function calls is the owner's to switch on.
		if _, err := tx.Exec(ctx, `SET LOCAL track_functions = 'pl'`); err != nil {
			return err
		}
		// The notification's statement, on 100 of the wave's accounts.
		tag, err := tx.Exec(ctx, `UPDATE account SET state = 'notified', notified_at = now(), deadline = now() + interval '42 days',
			code_hash = substring(sha256(id::text::bytea) FROM 1 FOR 8) WHERE id IN (SELECT id FROM account WHERE state = 'pending' ORDER BY id LIMIT 100)`)
		if err != nil || tag.RowsAffected() != 100 {
			t.Fatalf("notifying 100 accounts: %v (%d)", err, tag.RowsAffected())
		}
		var calls int64
		var stateLocked bool
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions`).Scan(&calls); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT xmax::text = (txid_current() % 4294967296)::text FROM account_state WHERE state = 'notified'`).Scan(&stateLocked); err != nil {
			return err
		}
		if calls != 1 || stateLocked {
			t.Errorf("notifying 100 accounts: %d database function calls, the state's row locked: %v; want 1 call (the change feed's) and no lock", calls, stateLocked)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = owner.Exec(ctx, `UPDATE account SET state = 'active', activated_at = now() WHERE id = (SELECT min(id) FROM account WHERE state = 'pending')`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || !strings.Contains(pgErr.Message, "transition pending -> active is not allowed") {
		t.Errorf("activating a pending account: %v; want the transition refused (check_violation)", err)
	}
}

// What a notified person costs the rows and keys that hold them, measured
// on a notified wave. Each bound held what a change made smaller:
//   - the change feed's key, which only grows, fills its pages whole: 25.6 B
//     a change when its pages were filled to 90%, 24.2 B since; and the
//     feed's numbers, which have no gaps and lie in the table in their
//     order, need no B-tree: the feed's indexes took 28.4 B a change with
//     the key, and its two block-range indexes alone take 8.5 B (here their
//     six fixed pages, which do not grow with the feed);
//   - a change's row stores no word it can compute (the change, from the
//     states it goes from and to) and no empty cause, and keeps to eight
//     columns so its header takes 24 bytes, not 32: 93.8 B a change before,
//     76.7 B since; and it stores its NIR as a number, 8 bytes and not 16:
//     69.6 B since;
//   - a notified account's row keeps its code's lookup hash in 16 bytes, not
//     a whole HMAC-SHA-256's 32: 137 B before, 121 B since; and its columns
//     are ordered so no alignment pads between them: 111 B since, which the
//     page rounds to 112, not 128; and the hash takes 8 bytes: 103 B since,
//     104 in its page; and its state is an enumeration stored before the
//     round and the flag, so nothing pads before the hash: 95 B since, 96 in
//     its page;
//   - a sent notice's row stores its kind, channel and status as
//     enumerations, 4 bytes each, not their words: 125 B an opposition email
//     before, 109 B since; and its recipient's hash in 8 bytes: 101 B since.
func TestANotifiedPersonsRowsAreCompact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := notifiedWave(t)
	for _, c := range []struct {
		what, query string
		most        float64
	}{
		{"a change in the feed's indexes", `SELECT (SELECT sum(pg_relation_size(indexrelid)) FROM pg_index WHERE indrelid = 'account_change'::regclass)::float8 / count(*) FROM account_change`, 10},
		{"a change in the feed", `SELECT pg_relation_size('account_change')::float8 / count(*) FROM account_change`, 70},
		{"a notified account's row", `SELECT avg(pg_column_size(a.*)) FROM account a WHERE state = 'notified'`, 96},
		{"a sent opposition email's row", `SELECT avg(pg_column_size(n.*)) FROM notice n WHERE status = 'sent' AND kind = 'opposition' AND channel = 'email'`, 104},
	} {
		var got float64
		if err := g.owner.QueryRow(ctx, c.query).Scan(&got); err != nil {
			t.Fatalf("measuring %s: %v", c.what, err)
		}
		if got > c.most {
			t.Errorf("%s takes %.1f B; want at most %.0f", c.what, got, c.most)
		}
	}
	var words []string
	if err := g.owner.QueryRow(ctx, `SELECT array_agg(DISTINCT w::text ORDER BY w::text)
		FROM (SELECT ens_change_word(state, previous, replaced_nir) AS w FROM account_change) c`).Scan(&words); err != nil {
		t.Fatal(err)
	}
	if want := []string{"created", "notified"}; !slices.Equal(words, want) {
		t.Errorf("the feed reads changes %v; want %v", words, want)
	}
}

// A notice's unique key (its account, kind, channel and round) stores the
// kind and the channel as one small number, not their words: 53 B a notice
// at 1,000,000 people before, the largest index of a wave. A second notice
// of the same kind, channel and round is still refused.
func TestANoticesKeyIsSmall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGrowingNotices(t)
	g.add(3000)
	var key float64
	var account int64
	if err := g.owner.QueryRow(ctx, `SELECT (SELECT sum(pg_relation_size(indexrelid)) FROM pg_index WHERE indrelid = 'notice'::regclass AND indisunique AND NOT indisprimary)::float8 / count(*),
		min(account_id) FROM notice`).Scan(&key, &account); err != nil {
		t.Fatal(err)
	}
	if key > 40 { // 56 B here before
		t.Errorf("a notice takes %.1f B in its unique key; want at most 40", key)
	}
	_, err := g.pool.Exec(ctx, `INSERT INTO notice (account_id, kind, channel) VALUES ($1, 'opposition', 'email')`, account)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Errorf("a second opposition email of the same round: %v; want it refused (unique_violation)", err)
	}
	if _, err := g.pool.Exec(ctx, `INSERT INTO notice (account_id, kind, channel) VALUES ($1, 'opposition', 'letter')`, account); err != nil {
		t.Errorf("an opposition letter besides the email: %v", err)
	}
}
