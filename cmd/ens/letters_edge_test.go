package main

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// A letter prints a date that leaves the whole window after its delivery,
// and delivery depends on where it goes: three days in metropolitan
// France, seven overseas, ten abroad (configurable). Before, every letter
// counted three days, Mayotte and abroad included.
func TestPrintedDateCountsDeliveryToEachDestination(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.lettersOnly("40", "41")
	t.Setenv("ENS_POST_DELAY", "2d")
	c.must("wave", "launch", "w")
	c.must("worker", "--until-idle")
	today := time.Now().In(provisioning.Paris)
	for dept, days := range map[string]int{"75": 2 + 3 + 42, "971": 2 + 7 + 42, "99": 2 + 10 + 42} {
		var printed []string
		rows, err := c.db().Query(context.Background(), `SELECT DISTINCT (deadline AT TIME ZONE 'Europe/Paris')::date::text
			FROM notice WHERE kind = 'opposition' AND channel = 'letter' AND department = $1`, dept)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var d string
			rows.Scan(&d) //nolint:errcheck
			printed = append(printed, d)
		}
		want := today.AddDate(0, 0, days).Format(time.DateOnly)
		if len(printed) != 1 || printed[0] != want {
			t.Errorf("department %s: letters print %v, want %s (render + 2 days to post + delivery + 42)", dept, printed, want)
		}
	}
}

// A batch the printer did not post in time cannot be acknowledged: its
// letters would reach their people with less than the window left before
// the date they print (or after it). It is reprinted instead: withdrawn —
// never to be posted — and its letters rendered again with fresh dates and
// the same codes; `--overdue` withdraws every batch past the posting SLA.
// Before, `letters posted` accepted a batch posted after its printed date,
// and a batch never acknowledged had no way out.
func TestStaleBatchIsReprintedNotPosted(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.lettersOnly("40", "43")
	t.Setenv("ENS_POST_DELAY", "2d")
	c.must("wave", "launch", "w")
	c.must("worker", "--until-idle")
	var batches []notice.LetterBatch
	c.json(&batches, "letters", "batches", "--json")
	if len(batches) < 3 {
		t.Fatalf("%d batches, want at least 3", len(batches))
	}
	stale, lost := batches[0], batches[1]
	// The first batch was rendered four days ago, the second five: two
	// days were allowed to post them.
	ctx := context.Background()
	for b, days := range map[int64]int{stale.ID: 4, lost.ID: 5} {
		if _, err := c.db().Exec(ctx, `UPDATE letter_batch SET rendered_at = rendered_at - make_interval(days => $2) WHERE id = $1`, b, days); err != nil {
			t.Fatal(err)
		}
		if _, err := c.db().Exec(ctx, `UPDATE notice SET deadline = deadline - make_interval(days => $2) WHERE batch_id = $1`, b, days); err != nil {
			t.Fatal(err)
		}
	}
	today := time.Now().In(provisioning.Paris).Format(time.DateOnly)
	id := strconv.FormatInt(stale.ID, 10)
	code, _, errs := c.run("letters", "posted", id, "--on", today)
	if code != 2 || !strings.Contains(errs, "reprint it") {
		t.Fatalf("a batch posted two days late: exit %d, %s; want exit 2 asking for a reprint", code, errs)
	}
	code, out, errs := c.run("letters", "reprint", id)
	if code != 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("reprint: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := c.run("letters", "posted", id, "--on", today); code != 2 || !strings.Contains(errs, "withdrawn") {
		t.Fatalf("posting a withdrawn batch: exit %d, %s", code, errs)
	}
	if code, _, errs := c.run("letters", "reprint", id); code != 2 {
		t.Fatalf("reprinting a withdrawn batch again: exit %d, %s", code, errs)
	}
	code, out, errs = c.run("letters", "reprint", "--overdue")
	if code != 0 || !strings.Contains(out, "batch "+strconv.FormatInt(lost.ID, 10)+" ") || strings.Contains(out, "batch "+id+" ") {
		t.Fatalf("reprint --overdue: exit %d\n%s%s", code, out, errs)
	}
	c.must("worker", "--until-idle")
	var after []notice.LetterBatch
	c.json(&after, "letters", "batches", "--json")
	withdrawn, fresh := 0, []notice.LetterBatch{}
	for _, b := range after {
		switch {
		case b.State == notice.BatchWithdrawn:
			withdrawn++
		case b.ID > batches[len(batches)-1].ID:
			fresh = append(fresh, b)
		}
	}
	if withdrawn != 2 || len(fresh) == 0 {
		t.Fatalf("after the reprints: %d withdrawn, %d new batches", withdrawn, len(fresh))
	}
	// The reprinted letters print a date from today, carry the same codes,
	// and their batch is posted today.
	var reprinted, freshDate int
	if err := c.db().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE (n.deadline AT TIME ZONE 'Europe/Paris')::date = (now() AT TIME ZONE 'Europe/Paris')::date + 47)
		FROM notice n JOIN letter_batch b ON b.id = n.batch_id WHERE b.id > $1`, batches[len(batches)-1].ID).Scan(&reprinted, &freshDate); err != nil {
		t.Fatal(err)
	}
	if reprinted != stale.Pages+lost.Pages || freshDate != reprinted {
		t.Fatalf("%d letters reprinted (want %d), %d with a date counted from today", reprinted, stale.Pages+lost.Pages, freshDate)
	}
	for _, b := range fresh {
		if code, _, errs := c.run("letters", "posted", strconv.FormatInt(b.ID, 10), "--on", today); code != 0 {
			t.Fatalf("posting the reprint: exit %d, %s", code, errs)
		}
	}
	c.must("reconcile", "w")
}

// must runs ens and fails the test unless it exits 0; it returns the
// standard output.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("ens %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// lettersOnly imports count people of seed who all receive letters: no
// email; a few overseas (971) and abroad.
func (c *cli) lettersOnly(count, seed string) {
	c.t.Helper()
	c.importFixture(count, seed)
	for _, q := range []string{
		`UPDATE person SET email = NULL`,
		`UPDATE person SET postcode = '97110', city = 'Pointe-à-Pitre', department = '971', country = NULL
			WHERE id IN (SELECT id FROM person WHERE death_date IS NULL ORDER BY id LIMIT 4)`,
		`UPDATE person SET postcode = '1000', city = 'Bruxelles', department = '99', country = 'Belgique'
			WHERE id IN (SELECT id FROM person WHERE death_date IS NULL ORDER BY id OFFSET 4 LIMIT 4)`,
		`UPDATE person SET postcode = '75011', city = 'Paris', department = '75', country = NULL
			WHERE id IN (SELECT id FROM person WHERE death_date IS NULL ORDER BY id OFFSET 8 LIMIT 4)`,
	} {
		if _, err := c.db().Exec(context.Background(), q); err != nil {
			c.t.Fatalf("%s: %v", q, err)
		}
	}
}

// A person whose address changes after their letter was printed, before
// its batch is posted, gets a new letter to the new address: the old one is
// withdrawn from its batch (the printer is told which page to pull), the
// new one is printed with the next batch of their new department, and only
// its posting informs them. Before, the import said "updated" and the
// letter went to the old address.
func TestAddressChangedBeforePostingGetsANewLetter(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.lettersOnly("30", "47")
	c.must("wave", "launch", "w")
	c.must("worker", "--until-idle")
	moving := c.pick(`a.state = 'notified' AND p.guardian_nir IS NULL AND p.id > (SELECT min(id) + 12 FROM person)
		AND EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.status = 'printed' AND n.kind = 'opposition')`)
	ctx := context.Background()
	var oldBatch int64
	var oldPage int32
	if err := c.db().QueryRow(ctx, `SELECT batch_id, page FROM notice WHERE account_id = $1 AND kind = 'opposition'`, moving.account).Scan(&oldBatch, &oldPage); err != nil {
		t.Fatal(err)
	}

	// The registry's next file gives them a new address in Marseille.
	f, err := os.Open(filepath.Join(c.dir, "reg-47.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var row []string
	for _, r := range rows[1:] {
		if r[col["nir"]] == moving.nir {
			row = r
		}
	}
	row[col["address_line4"]], row[col["postcode"]], row[col["city"]], row[col["country"]] = "1 La Canebière", "13001", "Marseille", ""
	next := filepath.Join(c.dir, "next.csv")
	var buf strings.Builder
	w := csv.NewWriter(&buf)
	w.WriteAll([][]string{rows[0], row}) //nolint:errcheck
	if err := os.WriteFile(next, []byte(buf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := c.run("registry", "import", next)
	if code != 0 || !strings.Contains(out, "1 letter(s) printed for the old one withdrawn") {
		t.Fatalf("import of the new address: exit %d\n%s%s", code, out, errs)
	}
	var batches []notice.LetterBatch
	c.json(&batches, "letters", "batches", "--json")
	for _, b := range batches {
		if b.ID == oldBatch && (len(b.PagesWithdrawn) != 1 || b.PagesWithdrawn[0] != oldPage) {
			t.Fatalf("batch %d lists pages to pull %v, want [%d]", b.ID, b.PagesWithdrawn, oldPage)
		}
	}
	c.must("worker", "--until-idle")
	var newBatch int64
	var dept, status string
	if err := c.db().QueryRow(ctx, `SELECT n.batch_id, b.department, n.status FROM notice n JOIN letter_batch b ON b.id = n.batch_id
		WHERE n.account_id = $1 AND n.kind = 'opposition'`, moving.account).Scan(&newBatch, &dept, &status); err != nil {
		t.Fatal(err)
	}
	if newBatch == oldBatch || dept != "13" || status != "printed" {
		t.Fatalf("the new letter: batch %d (old %d), department %s, %s; want a new batch of department 13, printed", newBatch, oldBatch, dept, status)
	}
	today := time.Now().In(provisioning.Paris).Format(time.DateOnly)
	if code, _, errs := c.run("letters", "posted", strconv.FormatInt(oldBatch, 10), "--on", today); code != 0 {
		t.Fatalf("posting the old batch: exit %d, %s", code, errs)
	}
	if err := c.db().QueryRow(ctx, `SELECT status FROM notice WHERE account_id = $1 AND kind = 'opposition'`, moving.account).Scan(&status); err != nil || status != "printed" {
		t.Fatalf("after the old batch's posting the new letter is %s (%v); want still printed: the old page was pulled", status, err)
	}
	if code, _, errs := c.run("letters", "posted", strconv.FormatInt(newBatch, 10), "--on", today); code != 0 {
		t.Fatalf("posting the new batch: exit %d, %s", code, errs)
	}
	c.must("reconcile", "w")
}

// A minor told through their representative who comes of age before the
// account is activated is told again, themselves, through their own
// channel, with a new window from that notice: the sweep never activates
// an adult who was never told. Before, the window closed and the account
// was activated as an adult's on the representative's notice alone.
func TestComingOfAgeBeforeActivationIsToldAgain(t *testing.T) {
	sink := mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("200", "53")
	c.must("wave", "launch", "w")
	c.must("worker", "--until-idle")
	minor := c.pick(`a.state = 'notified' AND p.guardian_nir IS NOT NULL AND p.protection IS NULL
		AND p.birth_date > (now() AT TIME ZONE 'Europe/Paris')::date - interval '18 years' AND p.birth_date < (now() AT TIME ZONE 'Europe/Paris')::date - interval '10 years'
		AND EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition' AND n.status IN ('sent', 'printed'))`)
	ctx := context.Background()
	var batch *int64
	if err := c.db().QueryRow(ctx, `SELECT batch_id FROM notice WHERE account_id = $1 AND kind = 'opposition' AND status = 'printed'`,
		minor.account).Scan(&batch); err == nil && batch != nil {
		if code, _, errs := c.run("letters", "posted", strconv.FormatInt(*batch, 10), "--on", time.Now().In(provisioning.Paris).Format(time.DateOnly)); code != 0 {
			t.Fatalf("posting the representative's letter: %s", errs)
		}
	}
	// They turned 18 yesterday; their representative's notice came ten
	// days ago; the window ended yesterday.
	for q, id := range map[string]int64{
		`UPDATE person SET birth_date = (now() AT TIME ZONE 'Europe/Paris')::date - interval '18 years' - interval '1 day', email = 'devenu.majeur@example.fr' WHERE id = $1`: minor.id,
		`UPDATE notice SET created_at = created_at - interval '10 days' WHERE account_id = $1`:                                                                                minor.account,
		`UPDATE account SET deadline = now() - interval '1 day', notified_at = now() - interval '10 days' WHERE id = $1`:                                                      minor.account,
	} {
		if _, err := c.db().Exec(ctx, q, id); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Setenv("ENS_ACTIVATION_GRACE", "0s")
	before := sink.Count()
	c.must("worker", "--until-idle")
	var state string
	var round int
	var deadline time.Time
	if err := c.db().QueryRow(ctx, `SELECT state, notice_round, deadline FROM account WHERE id = $1`, minor.account).Scan(&state, &round, &deadline); err != nil {
		t.Fatal(err)
	}
	if state != "notified" || round != 1 || deadline.Before(time.Now().AddDate(0, 0, 41)) {
		t.Fatalf("after their 18th birthday: %s, round %d, deadline %s; want notified again, round 1, a new window", state, round, deadline)
	}
	told := false
	for _, m := range sink.Messages()[before:] {
		told = told || strings.Contains(string(m), "devenu.majeur@example.fr")
	}
	if !told {
		t.Fatal("no notice reached the new adult's own address")
	}
	_, feed, _ := c.run("changes", "--after", "0")
	found := false
	for _, line := range strings.Split(feed, "\n") {
		found = found || (strings.Contains(line, `"change":"pending"`) && strings.Contains(line, `"cause":"came_of_age"`))
	}
	if !found {
		t.Fatal("the change feed does not carry the return to pending (came_of_age)")
	}
	c.must("reconcile", "w")
}

// A wave's report says when it was drawn and the audit log's head then;
// counts the rejected rows of the wave's own departments; gives the true
// times of its emails and the days its letters were posted (a letter's
// sent time is its posting day's midnight, not an hour of sending); and its
// last deadline counts letters still to post. Before: "first notice
// 00:00:00", "launch to last notice 0s", the whole registry's rejects, and
// a last deadline that ignored letters not yet posted.
func TestReportSeesWhatAnAuditorMust(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	// Rejected rows (their NIR's key is wrong): one in Paris, one in Lyon.
	bad := filepath.Join(c.dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("nir,last_name,first_name,birth_date,email,address_line2,address_line3,address_line4,address_line5,postcode,city,country\n"+
		"1850275123456,Martin,Jean,1985-02-01,,,,1 rue A,,75011,Paris,\n"+
		"1850269123456,Durand,Paul,1985-02-01,,,,1 rue B,,69001,Lyon,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.run("registry", "import", bad) // exits 5: its rows are rejected
	c.lettersOnly("40", "59")
	for _, q := range []string{
		`UPDATE person SET postcode = '92100', city = 'Boulogne-Billancourt', department = '92'
			WHERE id IN (SELECT id FROM person WHERE death_date IS NULL AND department NOT IN ('75', '971', '99') ORDER BY id LIMIT 4)`,
		`UPDATE person SET email = 'a' || id || '@example.fr' WHERE id % 2 = 0 AND department = '75'`,
	} {
		if _, err := c.db().Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	// Letters print three days later than emails: posting takes time.
	t.Setenv("ENS_POST_DELAY", "3d")
	c.must("wave", "launch", "paris", "--departments", "75,92")
	c.must("worker", "--until-idle")
	var batches []notice.LetterBatch
	c.json(&batches, "letters", "batches", "--json")
	if len(batches) < 2 {
		t.Fatalf("%d batches, want 2 or more", len(batches))
	}
	today := time.Now().In(provisioning.Paris).Format(time.DateOnly)
	for _, b := range batches {
		if b.Department != "92" {
			continue // Paris's letters wait for their posting
		}
		if code, _, errs := c.run("letters", "posted", strconv.FormatInt(b.ID, 10), "--on", today); code != 0 {
			t.Fatal(errs)
		}
	}
	var r struct {
		AsOf        time.Time        `json:"as_of"`
		AuditHead   string           `json:"audit_head"`
		Rejects     map[string]int64 `json:"import_rejects"`
		FirstNotice *time.Time       `json:"first_notice_at"`
		FirstPosted *time.Time       `json:"first_letters_posted_on"`
		Last        time.Time        `json:"last_deadline"`
	}
	c.json(&r, "report", "paris", "--format", "json")
	var total int64
	for _, n := range r.Rejects {
		total += n
	}
	var printed time.Time
	if err := c.db().QueryRow(context.Background(), `SELECT max(deadline) FROM notice WHERE status = 'printed'`).Scan(&printed); err != nil {
		t.Fatal(err)
	}
	switch {
	case time.Since(r.AsOf) > time.Minute:
		t.Errorf("as of %s", r.AsOf)
	case len(strings.Fields(r.AuditHead)) != 2 || len(strings.Fields(r.AuditHead)[1]) != 64:
		t.Errorf("audit head %q, want its event id and hash", r.AuditHead)
	case total != 1:
		t.Errorf("rejects %v, want the one row of Paris", r.Rejects)
	case r.FirstNotice == nil || r.FirstNotice.In(provisioning.Paris).Format("15:04:05") == "00:00:00":
		t.Errorf("first email at %v: a letter's posting day counted as an email's time", r.FirstNotice)
	case r.FirstPosted == nil || r.FirstPosted.In(provisioning.Paris).Format(time.DateOnly) != today:
		t.Errorf("letters first posted on %v, want %s", r.FirstPosted, today)
	case r.Last.Before(printed):
		t.Errorf("last deadline %s, before the date letters still to post print (%s)", r.Last, printed)
	}
}

// A change made to someone's account by someone else, or on their behalf,
// is told to them through their own channel: an agent's opposition, its
// withdrawal, a reinstatement; and at 18, a person whose account was
// activated while a minor is told the profile is theirs. A stolen letter,
// or an impostor past an identity check, no longer changes an account
// unseen. Before, none of these told the person anything.
func TestChangesAreToldToThePerson(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("120", "61")
	c.must("wave", "launch", "w")
	c.must("worker", "--until-idle")
	p := c.pick(`a.state = 'notified' AND p.email IS NOT NULL AND p.guardian_nir IS NULL AND p.protection IS NULL`)
	told := func(topic string) {
		t.Helper()
		c.must("worker", "--until-idle")
		var status, channel string
		err := c.db().QueryRow(context.Background(), `SELECT status, channel FROM notice WHERE account_id = $1 AND kind = 'change' AND topic = $2
			ORDER BY id DESC LIMIT 1`, p.account, topic).Scan(&status, &channel)
		if err != nil || status != "sent" || channel != "email" {
			t.Fatalf("%s: the person's notice of it is %s by %s (%v); want sent by email", topic, status, channel, err)
		}
	}
	c.agentOptout(p)
	told(provisioning.ChangeOpposedByAgent)
	if code, out, errs := c.agentOptout(p, "--undo"); code != 0 {
		t.Fatalf("undo: exit %d\n%s%s", code, out, errs)
	}
	told(provisioning.ChangeOppositionWithdrawn)
	c.agentOptout(p)
	if code, out, errs := c.runStdin(p.nir+"\n", "account", "reinstate", "--operator", "olga", "--identity-checked-by", "bob",
		"--birth-date", p.birth); code != 0 {
		t.Fatalf("reinstate: exit %d\n%s%s", code, out, errs)
	}
	told(provisioning.ChangeReinstated)

	// Activated three days ago, while still a minor; 18 yesterday.
	p = c.pick(`a.state = 'notified' AND p.email IS NOT NULL AND p.guardian_nir IS NULL AND p.protection IS NULL AND p.id <> $1`, p.id)
	ctx := context.Background()
	for q, id := range map[string]int64{
		`UPDATE account SET state = 'active', activated_at = now() - interval '3 days', notified_at = now() - interval '4 days' WHERE id = $1`:                                                            p.account,
		`UPDATE person SET birth_date = (now() AT TIME ZONE 'Europe/Paris')::date - interval '18 years' - interval '1 day', guardian_nir = (SELECT nir FROM person WHERE id <> $1 LIMIT 1) WHERE id = $1`: p.id,
	} {
		if _, err := c.db().Exec(ctx, q, id); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	told(provisioning.ChangeCameOfAge)
	c.must("reconcile", "w")
}
