package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
)

// `wave launch --per-day N --start-at D` spreads a wave's notices over
// days from D, at most N a day: each notice job is scheduled on its day,
// and a job never straddles two. Before, a wave went out all at once, now.
func TestWaveSpreadOverDaysFromAStartDate(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("330", "8")
	code, out, errs := c.run("wave", "launch", "spread", "--per-day", "100", "--start-at", "2027-01-04")
	if code != 0 || !strings.Contains(out, "at most 100 notices a day") {
		t.Fatalf("launch: %d %s %s", code, out, errs)
	}
	ctx := context.Background()
	conn := c.db()
	rows, err := conn.Query(ctx, `SELECT (scheduled_at AT TIME ZONE 'Europe/Paris')::date::text,
		sum((args->>'last_account_id')::bigint - (args->>'first_account_id')::bigint + 1)
		FROM river_job WHERE kind = 'notify_chunk' GROUP BY 1 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	perDay := map[string]int64{}
	var days []string
	for rows.Next() {
		var d string
		var n int64
		rows.Scan(&d, &n) //nolint:errcheck
		perDay[d] = n
		days = append(days, d)
	}
	var created int64
	conn.QueryRow(ctx, `SELECT count(*) FROM account`).Scan(&created) //nolint:errcheck
	want := int((created + 99) / 100)
	if len(days) != want || days[0] != "2027-01-04" {
		t.Fatalf("%d accounts dispatched on days %v, want %d days from 2027-01-04", created, perDay, want)
	}
	for _, d := range days {
		if perDay[d] > 100 {
			t.Fatalf("%d notices on %s: %v", perDay[d], d, perDay)
		}
	}
	var first time.Time
	conn.QueryRow(ctx, `SELECT min(scheduled_at) FROM river_job WHERE kind = 'notify_chunk'`).Scan(&first) //nolint:errcheck
	if !first.Equal(time.Date(2027, 1, 4, 0, 0, 0, 0, provisioning.Paris)) {
		t.Fatalf("first notices at %v, want 2027-01-04 00:00 Paris", first)
	}
	// Relaunching resumes the same wave; another schedule is refused.
	if code, _, errs := c.run("wave", "launch", "spread", "--per-day", "100", "--start-at", "2027-01-04"); code != 0 {
		t.Fatalf("relaunch: %d %s", code, errs)
	}
	if code, _, _ := c.run("wave", "launch", "spread", "--per-day", "50"); code != 2 {
		t.Fatalf("relaunch with another schedule: %d, want 2", code)
	}
}
