package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// Letters rendered just before a clock change print the deadline of the
// right calendar day: render day + 5 days + 42 days, at 23:59:59 in Paris.
// (Before, the 5-day delay was added as 120 hours.)
func TestLettersNearAClockChangePrintTheRightDay(t *testing.T) {
	t.Parallel()
	for _, at := range []time.Time{
		time.Date(2027, 10, 27, 0, 30, 0, 0, provisioning.Paris), // printed one day early
		time.Date(2027, 3, 24, 23, 30, 0, 0, provisioning.Paris), // printed one day late
		time.Date(2028, 10, 25, 0, 30, 0, 0, provisioning.Paris),
		time.Date(2028, 3, 22, 23, 30, 0, 0, provisioning.Paris),
	} {
		t.Run(at.Format(time.DateTime), func(t *testing.T) {
			t.Parallel()
			e := setupChunks(t, 20, nil, 40, -1) // letters only
			e.deps.Clock = func() time.Time { return at }
			e.deps.PostDelay = 5 * 24 * time.Hour
			e.runUntilIdle(t)
			want := time.Date(at.Year(), at.Month(), at.Day()+47, 23, 59, 59, 0, provisioning.Paris)
			var letters, wrong int
			var printed time.Time
			e.pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE deadline <> $1), min(deadline) FROM notice
				WHERE channel = 'letter' AND kind = 'opposition' AND status = 'printed'`, want).Scan(&letters, &wrong, &printed)
			if letters == 0 || wrong != 0 {
				t.Fatalf("%d of %d letters print %s, want %s", wrong, letters, printed.In(provisioning.Paris), want)
			}
		})
	}
}

// A batch whose transaction fails at commit leaves no file behind: the PDF
// (full of codes) is written under a staging name and published only once
// the batch is committed. (Before, the PDF was written first and stayed.)
func TestFailedCommitLeavesNoLetterFile(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, -1) // letters only
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner := testdb.OwnerPool(t, e.pool)
	if _, err := owner.Exec(ctx, `CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'the commit fails'; END $$;
		CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON letter_batch DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION fail_commit()`); err != nil {
		t.Fatal(err)
	}
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "a render to fail at commit", func() bool {
		var n int
		e.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'render_letters' AND cardinality(errors) > 0`).Scan(&n)
		return n > 0
	})
	c.Stop(ctx) //nolint:errcheck
	if files := letterFiles(t, e.deps.LettersDir); len(files) != 0 {
		t.Fatalf("files left by a batch that never committed: %v", files)
	}
	if _, err := owner.Exec(ctx, `DROP TRIGGER fail_commit ON letter_batch; UPDATE river_job SET scheduled_at = now() WHERE state = 'retryable'`); err != nil {
		t.Fatal(err)
	}
	e.runUntilIdle(t)
	filesAreTheBatches(t, e)
}

// filesAreTheBatches checks that the letters directory holds the files the
// committed batches name, published, and nothing else.
func filesAreTheBatches(t *testing.T, e *env) {
	t.Helper()
	committed, err := notice.BatchFiles(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	files := letterFiles(t, e.deps.LettersDir)
	if len(files) == 0 {
		t.Fatal("no letter file")
	}
	for _, f := range files {
		if !committed[f] {
			t.Errorf("%s is named by no batch", filepath.Base(f))
		}
		delete(committed, f)
	}
	for f := range committed {
		t.Errorf("%s, named by a committed batch, is missing", filepath.Base(f))
	}
}

// A batch's commit that reaches the database but whose answer is lost — a
// network cut, a failover, a worker stopped at that instant — leaves a
// committed batch the worker believes failed: its files are kept under
// their staging names, and the department's next render publishes them.
// (Before, the worker removed them: the batch's letters were recorded
// printed with no file to print — the fault suite lost 3 letters so when a
// render was cancelled by a worker's SIGTERM.)
func TestBatchCommittedButUnansweredKeepsItsFiles(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, -1) // letters only
	ctx := context.Background()
	var cut atomic.Bool
	cfg := e.pool.Config()
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &commitCut{Conn: c, cut: &cut}, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	e.deps.Pool = pool
	e.runUntilIdle(t)
	if !cut.Load() {
		t.Fatal("no batch's commit went unanswered")
	}
	filesAreTheBatches(t, e)
}

// commitCut is a connection to PostgreSQL that, once it has sent a letter
// batch's insert, lets the COMMIT after it reach the server, reads the
// server's answer and drops it with the connection: the batch is
// committed, its worker told the connection failed. It does so once among
// the connections sharing cut. pgx may read in a goroutine of its own while
// it writes, so the flags are atomic.
type commitCut struct {
	net.Conn
	cut                *atomic.Bool
	sawInsert, dropped atomic.Bool
}

func (c *commitCut) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("INSERT INTO letter_batch")) {
		c.sawInsert.Store(true)
	}
	if c.sawInsert.Load() && len(p) > 0 && p[0] == 'Q' && bytes.Contains(p, []byte("commit\x00")) && c.cut.CompareAndSwap(false, true) {
		c.dropped.Store(true)
	}
	return c.Conn.Write(p)
}

func (c *commitCut) Read(p []byte) (int, error) {
	if c.dropped.Load() {
		c.Conn.Read(make([]byte, 4096)) //nolint:errcheck // the server's answer: it committed
		c.Close()
		return 0, io.ErrUnexpectedEOF
	}
	return c.Conn.Read(p)
}

// A crash between a batch's commit and the publication of its files, or
// before its commit, is settled by the recovery a worker runs as it starts:
// committed files are published, orphans (old enough not to be another
// worker's batch in progress) removed.
func TestRecoveryPublishesCommittedAndRemovesOrphanLetterFiles(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, -1)
	e.runUntilIdle(t)
	ctx := context.Background()
	files := letterFiles(t, e.deps.LettersDir)
	if len(files) == 0 {
		t.Fatal("no letter files")
	}
	// The crash after commit: a committed PDF still under its staging name.
	committed := files[0]
	stagedName := filepath.Join(filepath.Dir(committed), notify.StagingPrefix+filepath.Base(committed))
	if err := os.Rename(committed, stagedName); err != nil {
		t.Fatal(err)
	}
	// The crash before commit: a batch no table knows, an hour old.
	orphan := filepath.Join(filepath.Dir(committed), notify.StagingPrefix+"dept-99-batch-999999.pdf")
	os.WriteFile(orphan, []byte("%PDF codes"), 0o600) //nolint:errcheck
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(orphan, old, old) //nolint:errcheck
	// A young one may be another worker's batch in progress: kept.
	young := filepath.Join(filepath.Dir(committed), notify.StagingPrefix+"dept-98-batch-999998.pdf")
	os.WriteFile(young, []byte("%PDF codes"), 0o600) //nolint:errcheck

	published, removed, err := jobs.RecoverLetterFiles(ctx, e.pool, e.deps.LettersDir, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil || published != 1 || removed != 1 {
		t.Fatalf("recovery: %d published, %d removed, %v", published, removed, err)
	}
	for path, want := range map[string]bool{committed: true, stagedName: false, orphan: false, young: true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", filepath.Base(path), err == nil, want)
		}
	}
}

// A worker killed mid-render leaves its batch's files under their staging
// names (and a temporary file it was writing): the next attempt of that
// department's render removes them at once, as nothing else can be writing
// them. A staged file of another department is left to its own render.
// (Before, they stayed an hour, codes in clear that no table knew: the
// fault suite found them after SIGKILLs.)
func TestRenderRemovesWhatAKilledRenderLeft(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, -1) // letters only
	ctx := context.Background()
	rows, _ := e.pool.Query(ctx, `SELECT DISTINCT coalesce(department, '00') FROM person`)
	depts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.deps.LettersDir, fmt.Sprintf("wave-%d", e.wave.ID))
	os.MkdirAll(dir, 0o700) //nolint:errcheck
	left := func(dept string) []string {
		return []string{
			filepath.Join(dir, notify.StagingPrefix+"dept-"+dept+"-batch-999999.pdf"),
			filepath.Join(dir, notify.StagingPrefix+"dept-"+dept+"-batch-999999.manifest.csv"),
			filepath.Join(dir, notify.StagingPrefix+"dept-"+dept+"-batch-999999.pdf.tmp-42"),
		}
	}
	other := filepath.Join(dir, notify.StagingPrefix+"dept-zz-batch-999998.pdf")
	for _, d := range depts {
		for _, f := range left(d) {
			os.WriteFile(f, []byte("%PDF codes"), 0o600) //nolint:errcheck
		}
	}
	os.WriteFile(other, []byte("%PDF codes"), 0o600) //nolint:errcheck
	e.runUntilIdle(t)
	rows, _ = e.pool.Query(ctx, `SELECT DISTINCT department FROM letter_batch`)
	rendered, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(rendered) == 0 {
		t.Fatalf("no department rendered (%v)", err)
	}
	for _, d := range rendered {
		for _, f := range left(d) {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%s is still there after the department's render", filepath.Base(f))
			}
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another department's staged file was removed: %v", err)
	}
}

// letterFiles lists the PDFs and manifests under dir, staged or published.
func letterFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".pdf") || strings.HasSuffix(p, ".csv")) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// A chunk stuck under a dead worker holds nobody's letter back for long:
// letters waiting longer than MaxLetterWait are rendered while it stays
// stuck. (Before: every render of the wave snoozed until the stuck chunk
// was rescued, a quarter of an hour later.)
func TestStuckChunkDoesNotHoldLettersBack(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 40, nil, 40, -1) // letters only
	e.deps.MaxLetterWait = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A chunk of this wave, running under a worker that died.
	if _, err := e.pool.Exec(ctx, `INSERT INTO river_job (kind, args, state, attempt, attempted_at, max_attempts, queue, priority)
		VALUES ('notify_chunk', jsonb_build_object('wave_id', $1::bigint, 'first_account_id', 999999, 'last_account_id', 999999),
		        'running', 1, now(), 100, 'notices', 1)`, e.wave.ID); err != nil {
		t.Fatal(err)
	}
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background()) //nolint:errcheck
	waitFor(t, ctx, "letters rendered while a chunk is stuck", func() bool {
		return e.count(t, `SELECT count(*) FROM notice WHERE channel = 'letter' AND status = 'printed'`) > 0
	})
}
