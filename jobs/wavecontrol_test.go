package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning/wave"
)

// A paused wave sends nothing until it is resumed; a cancelled one cancels
// its people not yet told, and those told keep their window; a wave whose
// chunk failed for good is driven again by retry. All audited.
// (Before: no pause, no cancel, and pending accounts of a discarded chunk
// had nothing to drive them again.)
func TestOperatorsSteerAWave(t *testing.T) {
	t.Parallel()
	e := setup(t, 120, nil)
	ctx := context.Background()
	if err := wave.Pause(ctx, testdb.Store(e.pool), "w1", "olga"); err != nil {
		t.Fatal(err)
	}
	c := e.client(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Every chunk is looked at and put back to wait.
	waitFor(t, ctx, "the paused wave's chunks to wait", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'notify_chunk' AND state = 'scheduled'`) ==
			e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'notify_chunk'`)
	})
	c.Stop(ctx) //nolint:errcheck
	if sent := e.sink.Count(); sent != 0 {
		t.Fatalf("%d emails left a paused wave", sent)
	}
	if err := wave.Resume(ctx, testdb.Store(e.pool), "w1", "olga"); err != nil {
		t.Fatal(err)
	}
	e.pool.Exec(ctx, `UPDATE river_job SET scheduled_at = now() WHERE state = 'scheduled'`) //nolint:errcheck
	// One chunk fails for good (discarded) before it is worked.
	var lost int64
	e.pool.QueryRow(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now()
		WHERE id = (SELECT min(id) FROM river_job WHERE kind = 'notify_chunk') RETURNING (args->>'last_account_id')::bigint - (args->>'first_account_id')::bigint + 1`).Scan(&lost)
	e.runUntilIdle(t)
	pending := e.count(t, `SELECT count(*) FROM account WHERE state = 'pending'`)
	if pending == 0 || int64(pending) > lost {
		t.Fatalf("%d pending after a discarded chunk of %d accounts", pending, lost)
	}
	ins, _ := jobs.NewInsertClient(e.pool)
	n, err := jobs.RetryWave(ctx, testdb.Store(e.pool), ins, "w1", "olga")
	if err != nil || n != int64(pending) {
		t.Fatalf("retry: %d (%v), want %d", n, err, pending)
	}
	e.runUntilIdle(t)
	if p := e.count(t, `SELECT count(*) FROM account WHERE state = 'pending'`); p != 0 {
		t.Fatalf("%d still pending after retry", p)
	}
	// Another wave is cancelled half-way: its people not yet told are
	// cancelled, those told keep their window.
	e2 := setup(t, 200, nil)
	c2 := e2.client(t)
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait, stop := context.WithTimeout(ctx, 30*time.Second)
	e2.sink.WaitCount(wait, 20) //nolint:errcheck
	stop()
	stopCtx, done := context.WithTimeout(ctx, 10*time.Second)
	c2.StopAndCancel(stopCtx) //nolint:errcheck
	done()
	notified := e2.count(t, `SELECT count(*) FROM account WHERE state = 'notified'`) // newborns, active from the start, are still informed
	pendingBefore := e2.count(t, `SELECT count(*) FROM account WHERE state = 'pending'`)
	cancelled, err := wave.Cancel(ctx, testdb.Store(e2.pool), "w1", "olga")
	if err != nil || cancelled != int64(pendingBefore) || pendingBefore == 0 {
		t.Fatalf("cancel: %d of %d pending (%v)", cancelled, pendingBefore, err)
	}
	e2.runUntilIdle(t)
	if n := e2.count(t, `SELECT count(*) FROM account WHERE state = 'notified'`); n != notified {
		t.Fatalf("%d told after the cancel, %d before: they keep their window and nobody else is told", n, notified)
	}
	if err := wave.Resume(ctx, testdb.Store(e2.pool), "w1", "olga"); err == nil {
		t.Fatal("a cancelled wave resumed")
	}
	if n := e.count(t, `SELECT count(*) FROM audit_event WHERE action IN ('wave.paused', 'wave.resumed', 'wave.retried')`); n != 3 {
		t.Fatalf("%d audit events for the operator's acts, want 3", n)
	}
}
