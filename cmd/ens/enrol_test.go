package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
)

// A national wave, then three daily registry imports (births and newly
// insured people, deaths, moves) with continuous enrolment on: every newcomer
// gets an account in the month's rolling wave — newborns active at once with
// an information notice, the others notified with the normal window — and
// reconcile finds every person of both waves accounted for. Before, nobody
// born or insured after a wave ever got an account without an operator.
func TestContinuousEnrolmentOverDailyImports(t *testing.T) {
	mailSink(t, mailsink.Options{})
	t.Setenv("ENS_POST_DELAY", "0")
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	gen := func(name, seed string, count string) [][]string {
		path := filepath.Join(c.dir, name)
		if code, _, errs := c.run("fixtures", "registry", "--count", count, "--seed", seed, "-o", path); code != 0 {
			t.Fatal(errs)
		}
		f, _ := os.Open(path)
		defer f.Close()
		r := csv.NewReader(f)
		r.FieldsPerRecord = -1 // the fixtures hold rows made to be rejected
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	write := func(name string, rows [][]string) string {
		path := filepath.Join(c.dir, name)
		f, _ := os.Create(path)
		w := csv.NewWriter(f)
		w.WriteAll(rows) //nolint:errcheck
		f.Close()
		return path
	}
	national := gen("national.csv", "21", "300")
	if code, _, errs := c.run("registry", "import", filepath.Join(c.dir, "national.csv")); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("wave", "launch", "national"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("enrol"); code != 2 || !strings.Contains(errs, "--enable") {
		t.Fatalf("enrol while off: %d %s", code, errs)
	}
	if code, out, errs := c.run("enrol", "--enable"); code != 0 || !strings.Contains(out, "is on") {
		t.Fatalf("enrol --enable: %d %s %s", code, out, errs)
	}
	header, registry := national[0], national[1:]
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	wave := ""
	for day, seed := range []string{"22", "23", "24"} {
		newcomers := gen("new.csv", seed, "40")[1:]
		// The day's file: everyone already known, some of them moved or
		// dead, and the newcomers (births and people newly insured).
		if r := registry[day*3]; len(r) == len(header) {
			r[col["postcode"]], r[col["city"]] = "69003", "Lyon"
		}
		if r := registry[day*3+1]; len(r) == len(header) && r[col["birth_date"]] < "2008-01-01" { // an adult, not someone's guardian
			r[col["death_date"]] = "2026-11-20"
		}
		registry = append(registry, newcomers...)
		path := write("day.csv", append([][]string{header}, registry...))
		if code, _, errs := c.run("registry", "import", path); code != 0 {
			t.Fatalf("day %d import: %s", day+1, errs)
		}
		var res struct {
			Wave    struct{ Name string } `json:"wave"`
			Created int64                 `json:"created"`
			Active  int64                 `json:"active"`
		}
		c.json(&res, "enrol", "--json")
		if res.Created == 0 || !strings.HasPrefix(res.Wave.Name, "enrol-") {
			t.Fatalf("day %d: enrolment created %+v", day+1, res)
		}
		wave = res.Wave.Name
		c.json(&res, "enrol", "--json")
		if res.Created != 0 {
			t.Fatalf("day %d: a second run created %d more", day+1, res.Created)
		}
		if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
			t.Fatalf("day %d worker: %s", day+1, errs)
		}
	}

	ctx := context.Background()
	conn := c.db()
	var unenrolled, newborns, newbornsInformed, others, othersNotified int64
	err := conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM person p WHERE p.death_date IS NULL AND NOT EXISTS (SELECT 1 FROM account a WHERE a.person_id = p.id)),
		count(*) FILTER (WHERE p.birth_date >= $2),
		count(*) FILTER (WHERE p.birth_date >= $2 AND a.state = 'active' AND EXISTS (
			SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'information' AND n.status IN ('sent', 'printed'))),
		count(*) FILTER (WHERE p.birth_date < $2),
		count(*) FILTER (WHERE p.birth_date < $2 AND a.state IN ('notified', 'unreachable') AND a.deadline IS NOT NULL OR a.state = 'unreachable')
		FROM account a JOIN wave w ON w.id = a.wave_id AND w.name = $1 JOIN person p ON p.id = a.person_id`,
		wave, provisioning.NewbornSince).Scan(&unenrolled, &newborns, &newbornsInformed, &others, &othersNotified)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("enrolment wave %s: %d newborns (%d informed), %d others (%d notified); %d alive people without an account",
		wave, newborns, newbornsInformed, others, othersNotified, unenrolled)
	if unenrolled != 0 || newborns == 0 || newbornsInformed != newborns || others == 0 || othersNotified != others {
		t.Fatal("not every newcomer was enrolled and told")
	}
	for _, w := range []string{"national", wave} {
		var rec struct {
			Clean bool `json:"clean"`
		}
		code, out, errs := c.run("reconcile", w, "--json")
		if code != 0 || json.Unmarshal([]byte(out), &rec) != nil || !rec.Clean {
			t.Fatalf("reconcile %s: %d\n%s%s", w, code, out, errs)
		}
	}
}
