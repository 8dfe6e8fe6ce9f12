package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
)

// A wave's outstanding jobs are found without reading its finished ones: a
// render looks for its wave's chunks every 200 ms, and a 5,000,000-person
// wave finishes 10,000 chunks while others may be queued. With 20,000
// finished chunks and renders of the wave in River's table, one of its
// chunks outstanding and another wave's 2,000, each look reads a handful of
// blocks. (Before, searched by their arguments, each read every job of the
// wave: 8.7 ms a look on the 5,000,000-person wave.)
func TestOutstandingJobsAreFoundWithoutReadingFinishedOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	owner := testdb.OwnerPool(t, pool)
	if _, err := owner.Exec(ctx, `INSERT INTO river_job (kind, args, state, queue, max_attempts, finalized_at)
		SELECT CASE WHEN i % 2 = 0 THEN $1 ELSE $2 END,
		       jsonb_build_object('wave_id', 7, 'first', i, 'department', lpad((i % 100)::text, 2, '0')),
		       'completed', 'notices', 5, now()
		FROM generate_series(1, 20000) i`, NotifyChunkArgs{}.Kind(), RenderLettersArgs{}.Kind()); err != nil {
		t.Fatal(err)
	}
	// One chunk of the wave still to work, and another wave's 2,000
	// queued meanwhile.
	if _, err := owner.Exec(ctx, `INSERT INTO river_job (kind, args, state, queue, max_attempts)
		SELECT $1, jsonb_build_object('wave_id', CASE WHEN i = 0 THEN 7 ELSE 8 END, 'first', i), 'available', 'notices', 5
		FROM generate_series(0, 2000) i`, NotifyChunkArgs{}.Kind()); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `ANALYZE river_job`); err != nil {
		t.Fatal(err)
	}
	// The index holds the states a unique job is outstanding in.
	for _, st := range uniqueWhileOutstanding {
		if !strings.Contains(outstandingJobs, "'"+string(st)+"'") {
			t.Fatalf("outstanding jobs leave out state %s", st)
		}
	}
	busy, err := chunksOutstanding(ctx, pool, 7)
	if err != nil || !busy {
		t.Fatalf("the wave's outstanding chunk: %v, %v", busy, err)
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"the wave's chunks still to work": {chunksOutstandingSQL, []any{NotifyChunkArgs{}.Kind(), int64(7)}},
		"the wave's renders queued":       {queuedRendersSQL, []any{RenderLettersArgs{}.Kind(), int64(7)}},
	} {
		var plan []struct {
			Plan struct {
				SharedHit  int64 `json:"Shared Hit Blocks"`
				SharedRead int64 `json:"Shared Read Blocks"`
			} `json:"Plan"`
		}
		var raw []byte
		if err := pool.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+q.sql, q.args...).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		if blocks := plan[0].Plan.SharedHit + plan[0].Plan.SharedRead; blocks > 10 {
			t.Errorf("%s among 20,000 finished jobs: %d blocks read, want a handful", name, blocks)
		}
	}
}
