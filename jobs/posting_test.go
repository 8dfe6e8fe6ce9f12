package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/wave"
	"github.com/ens-sante/ens/provisioning/window"
)

func clockAt(t time.Time) provisioning.Clock { return func() time.Time { return t } }

// counts runs a count query with args.
func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A letter informs its person only once the printer has posted it: the
// sweep activates nobody whose batch is not acknowledged, however late; an
// unacknowledged batch is overdue after the SLA; the acknowledgement makes
// the letters sent, their deadline the printed date; a posting too late for
// that date (posting day + delivery + 42 days after it) is refused. (Before,
// rendering a PDF was enough and these people became active six weeks
// after it.)
func TestUnpostedBatchBlocksActivation(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 40, nil, 40, -1) // letters only
	rendered := time.Date(2027, 1, 11, 10, 0, 0, 0, provisioning.Paris)
	e.deps.Clock = clockAt(rendered)
	e.deps.PostDelay = 5 * 24 * time.Hour
	delivery := provisioning.Delivery{Metropolitan: 3 * 24 * time.Hour, Overseas: 3 * 24 * time.Hour, Abroad: 3 * 24 * time.Hour}
	e.deps.Delivery = delivery
	e.runUntilIdle(t)
	ctx := context.Background()
	printedDeadline := time.Date(2027, 3, 2, 23, 59, 59, 0, provisioning.Paris) // 11 Jan + 5 + 3 + 42
	if n := e.count(t, `SELECT count(*) FROM notice WHERE channel = 'letter' AND status = 'printed' AND deadline = $1 AND kind = 'opposition'`, printedDeadline); n == 0 {
		t.Fatal("no printed letter with the printed deadline")
	}
	late := printedDeadline.AddDate(0, 1, 0)
	if n, err := window.Close(ctx, testdb.Store(e.pool).At(clockAt(late)), 0, 0); err != nil || n != 0 {
		t.Fatalf("the sweep activated %d account(s) whose letters were never posted (%v)", n, err)
	}
	bs, err := notice.ListLetterBatches(ctx, e.pool, notice.BatchFilter{State: notice.BatchOverdue}, rendered.Add(4*24*time.Hour))
	if err != nil || len(bs) == 0 {
		t.Fatalf("no batch overdue four days after rendering: %v", err)
	}
	st, _ := wave.GetStatus(ctx, e.pool, "w1", wave.StatusOptions{At: late})
	if st.Letters.Overdue != int64(len(bs)) || st.Letters.AwaitingPosting == 0 {
		t.Fatalf("wave status: %+v", st.Letters)
	}
	// The first batch is posted the day after rendering; the second four
	// days after: 15 Jan + 3 + 42 = 1 March, still within the printed date.
	opts := notice.PostingOptions{Operator: "imprimeur", Delivery: delivery}
	printer := testdb.Store(e.pool).At(clockAt(rendered.AddDate(0, 0, 5)))
	if _, err := notice.AcknowledgePosting(ctx, printer, bs[0].File, rendered.AddDate(0, 0, 1), "", opts); err != nil {
		t.Fatal(err)
	}
	p, err := notice.AcknowledgePosting(ctx, printer, bs[1].Manifest, rendered.AddDate(0, 0, 4), bs[1].SHA256, opts)
	if err != nil || p.Letters != bs[1].Pages {
		t.Fatalf("acknowledgement: %+v %v", p, err)
	}
	if again, err := notice.AcknowledgePosting(ctx, printer, bs[1].File, rendered.AddDate(0, 0, 4), "", opts); err != nil || !again.Already {
		t.Fatalf("the same acknowledgement again: %+v %v", again, err)
	}
	for name, day := range map[string]time.Time{"another day": rendered.AddDate(0, 0, 3), "the future": rendered.AddDate(0, 0, 9),
		"before rendering": rendered.AddDate(0, 0, -1)} {
		if _, err := notice.AcknowledgePosting(ctx, printer, bs[2].File, day, "", opts); err == nil && name != "another day" {
			t.Errorf("a posting day in %s was accepted", name)
		}
	}
	if _, err := notice.AcknowledgePosting(ctx, printer, bs[3].File, rendered, "0000", opts); err == nil {
		t.Error("a batch acknowledged with another file's SHA-256")
	}
	// Six days after: 17 Jan + 3 + 42 = 3 March, after the printed date.
	later := testdb.Store(e.pool).At(clockAt(rendered.AddDate(0, 0, 8)))
	if _, err := notice.AcknowledgePosting(ctx, later, bs[3].File, rendered.AddDate(0, 0, 6), "", opts); !errors.Is(err, notice.ErrPostingDate) ||
		!strings.Contains(err.Error(), "reprint") {
		t.Errorf("a batch posted too late for its printed date: %v", err)
	}
	for _, name := range []string{"%", "_", "dept-%.pdf", ""} { // never a pattern: one batch, named exactly
		if _, err := notice.AcknowledgePosting(ctx, printer, name, rendered, "", opts); !errors.Is(err, provisioning.ErrNotFound) {
			t.Errorf("acknowledging %q: %v, want not found", name, err)
		}
	}
	var first, second time.Time
	e.pool.QueryRow(ctx, `SELECT max(a.deadline) FROM account a JOIN notice n ON n.account_id = a.id WHERE n.batch_id = $1 AND n.kind = 'opposition'`, bs[0].ID).Scan(&first)
	e.pool.QueryRow(ctx, `SELECT min(a.deadline) FROM account a JOIN notice n ON n.account_id = a.id WHERE n.batch_id = $1 AND n.kind = 'opposition'`, bs[1].ID).Scan(&second)
	if !first.Equal(printedDeadline) || !second.Equal(printedDeadline) {
		t.Fatalf("deadlines after posting: %s and %s, want the printed %s", first, second, printedDeadline)
	}
	n, err := window.Close(ctx, testdb.Store(e.pool).At(clockAt(late)), 0, 0)
	posted := e.count(t, `SELECT count(DISTINCT n.account_id) FROM notice n JOIN letter_batch b ON b.id = n.batch_id
		WHERE b.posted_on IS NOT NULL AND n.kind = 'opposition'`)
	if err != nil || int(n) != posted {
		t.Fatalf("after posting: %d activated, %d people's letters posted (%v)", n, posted, err)
	}
	if left := e.count(t, `SELECT count(*) FROM account a JOIN notice n ON n.account_id = a.id JOIN letter_batch b ON b.id = n.batch_id
		WHERE b.posted_on IS NULL AND a.state = 'active' AND n.kind = 'opposition'`); left != 0 {
		t.Fatalf("%d people activated on a letter never posted", left)
	}
}

// An email-only person whose email fails has no letter to receive: they
// become unreachable — never an addressless letter, never activated.
// (Before: a letter with department 00 and no address, then activation.)
func TestEmailOnlyPersonWhoseEmailFailsIsUnreachable(t *testing.T) {
	t.Parallel()
	e := setup(t, 200, mailsink.RecipientIs(mailsink.Permanent, "3@"))
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE person SET address_line2 = NULL, address_line3 = NULL, address_line4 = NULL,
		address_line5 = NULL, postcode = NULL, city = NULL, department = NULL WHERE email LIKE '%3@%'`); err != nil {
		t.Fatal(err)
	}
	e.runUntilIdle(t)
	refused := e.count(t, `SELECT count(*) FROM notice WHERE channel = 'email' AND status = 'failed'`)
	unreachable := e.count(t, `SELECT count(*) FROM account WHERE state = 'unreachable' AND unreachable_reason = 'email failed, no postal address'`)
	addressless := e.count(t, `SELECT count(*) FROM notice WHERE channel = 'letter' AND department IS NULL OR department = '00'`)
	if refused == 0 || unreachable == 0 || addressless != 0 {
		t.Fatalf("%d emails refused, %d people unreachable, %d addressless letters", refused, unreachable, addressless)
	}
	if _, err := window.Close(ctx, testdb.Store(e.pool).At(clockAt(time.Now().AddDate(0, 3, 0))), 0, 0); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM account WHERE state = 'unreachable'`); n != unreachable {
		t.Fatalf("%d of %d unreachable people activated", unreachable-n, unreachable)
	}
	st, _ := wave.GetStatus(ctx, e.pool, "w1", wave.StatusOptions{})
	if st.Accounts[provisioning.StateUnreachable] != int64(unreachable) {
		t.Fatalf("wave status: %v", st.Accounts)
	}
	// A death arriving for an unreachable person cancels their account.
	var person int64
	e.pool.QueryRow(ctx, `SELECT person_id FROM account WHERE state = 'unreachable' LIMIT 1`).Scan(&person)
	e.importDeaths(t, []int64{person}, time.Now().AddDate(0, 0, -1), nil)
	if n := e.count(t, `SELECT count(*) FROM account WHERE person_id = $1 AND state = 'cancelled'`, person); n != 1 {
		t.Fatal("an unreachable person's death did not cancel their account")
	}
}

// A bounce that arrives after the account was activated prints no letter:
// its deadline would have passed (the form refuses it) — it is recorded and
// audited. (Before: a letter printing a deadline the form refused.)
func TestLateBounceOnActiveAccountPrintsNoLetter(t *testing.T) {
	t.Parallel()
	e := setup(t, 40, nil)
	e.runUntilIdle(t)
	ctx := context.Background()
	if _, err := window.Close(ctx, testdb.Store(e.pool).At(clockAt(time.Now().AddDate(0, 3, 0))), 0, 0); err != nil {
		t.Fatal(err)
	}
	var noticeID int64
	if err := e.pool.QueryRow(ctx, `SELECT n.id FROM notice n JOIN account a ON a.id = n.account_id
		WHERE n.channel = 'email' AND n.status = 'sent' AND n.kind = 'opposition' AND a.state = 'active' LIMIT 1`).Scan(&noticeID); err != nil {
		t.Fatal(err)
	}
	ins, _ := jobs.NewInsertClient(e.pool)
	n, err := notice.FallBackToLetter(ctx, testdb.Store(e.pool), []int64{noticeID}, "bounced", "dsn", jobs.LetterQueuer(ins))
	if err != nil || n != 0 {
		t.Fatalf("a late bounce queued %d letter(s) (%v)", n, err)
	}
	if letters := e.count(t, `SELECT count(*) FROM notice l JOIN notice m ON m.account_id = l.account_id WHERE m.id = $1 AND l.channel = 'letter'`, noticeID); letters != 0 {
		t.Fatalf("%d letters for an active account's late bounce", letters)
	}
	if ev := e.count(t, `SELECT count(*) FROM audit_event WHERE action = 'notice.failed_after_activation'`); ev != 1 {
		t.Fatalf("%d audit events for the late bounce", ev)
	}
}

// A letter La Poste brings back makes its person unreachable: never
// activated, listed; once a later import gives a new address, the wave's
// renotify sends a new letter with a new window.
func TestReturnedLetterBlocksActivationUntilANewAddress(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, -1) // letters only
	e.runUntilIdle(t)
	ctx := context.Background()
	bs, _ := notice.ListLetterBatches(ctx, e.pool, notice.BatchFilter{}, time.Now())
	for _, b := range bs {
		if _, err := notice.AcknowledgePosting(ctx, testdb.Store(e.pool), b.File, time.Now(), "", notice.PostingOptions{Operator: "imprimeur"}); err != nil {
			t.Fatal(err)
		}
	}
	var noticeID, accountID int64
	e.pool.QueryRow(ctx, `SELECT id, account_id FROM notice WHERE channel = 'letter' AND kind = 'opposition' AND status = 'sent' ORDER BY id LIMIT 1`).Scan(&noticeID, &accountID)
	file := "reference,returned_on,reason\n" +
		"ENS-" + strings.Repeat("0", 9-len(itoa(noticeID))) + itoa(noticeID) + "," + time.Now().In(provisioning.Paris).Format(time.DateOnly) + ",NPAI\n" +
		"ENS-999999999,2020-01-01,NPAI\nnot-a-reference,2020-01-01,\n"
	res, err := notice.RecordReturns(ctx, testdb.Store(e.pool), strings.NewReader(file), "la-poste")
	if err != nil || res.Returned != 1 || res.Unreachable != 1 || len(res.Rejected) != 2 {
		t.Fatalf("returns: %+v %v", res, err)
	}
	if again, _ := notice.RecordReturns(ctx, testdb.Store(e.pool), strings.NewReader(file), "la-poste"); again.Returned != 0 {
		t.Fatalf("a return recorded twice: %+v", again)
	}
	if _, err := window.Close(ctx, testdb.Store(e.pool).At(clockAt(time.Now().AddDate(0, 3, 0))), 0, 0); err != nil {
		t.Fatal(err)
	}
	var state string
	e.pool.QueryRow(ctx, `SELECT state FROM account WHERE id = $1`, accountID).Scan(&state)
	if state != "unreachable" {
		t.Fatalf("a person whose letter came back is %s", state)
	}
	ins, _ := jobs.NewInsertClient(e.pool)
	if r, err := wave.Renotify(ctx, testdb.Store(e.pool), "w1", "olga", jobs.Enqueuer(ins)); err != nil || r.Renotified != 0 || r.StillUnreachable != 1 {
		t.Fatalf("renotify with the same address: %+v %v", r, err)
	}
	// A later import brings a new address.
	if _, err := e.pool.Exec(ctx, `UPDATE person SET address_line4 = '3 rue Neuve', updated_at = now()
		WHERE id = (SELECT person_id FROM account WHERE id = $1)`, accountID); err != nil {
		t.Fatal(err)
	}
	if r, err := wave.Renotify(ctx, testdb.Store(e.pool), "w1", "olga", jobs.Enqueuer(ins)); err != nil || r.Renotified != 1 {
		t.Fatalf("renotify after a new address: %+v %v", r, err)
	}
	e.runUntilIdle(t)
	if n := e.count(t, `SELECT count(*) FROM notice WHERE account_id = $1 AND channel = 'letter' AND seq = 1 AND status = 'printed'`, accountID); n != 1 {
		t.Fatalf("%d new letters after the new address", n)
	}
	e.pool.QueryRow(ctx, `SELECT state FROM account WHERE id = $1`, accountID).Scan(&state)
	if state != "notified" {
		t.Fatalf("re-notified person is %s", state)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A posted batch's PDF (it holds codes) is deleted once its retention has
// passed; its manifest, row and SHA-256 stay, and the deletion is audited.
func TestPostedLetterFilesDeletedAfterRetention(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 20, nil, 40, -1)
	rendered := time.Date(2027, 1, 11, 10, 0, 0, 0, provisioning.Paris)
	e.deps.Clock = clockAt(rendered)
	e.deps.PostDelay = 2 * 24 * time.Hour
	e.runUntilIdle(t)
	ctx := context.Background()
	bs, _ := notice.ListLetterBatches(ctx, e.pool, notice.BatchFilter{}, rendered)
	opts := notice.PostingOptions{Operator: "imprimeur"}
	printer := testdb.Store(e.pool).At(clockAt(rendered.AddDate(0, 0, 2)))
	if _, err := notice.AcknowledgePosting(ctx, printer, bs[0].File, rendered.AddDate(0, 0, 1), "", opts); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if n, err := jobs.DeleteExpiredLetterFiles(ctx, testdb.Store(e.pool).At(clockAt(rendered.AddDate(0, 0, 30))), 30*24*time.Hour, 3*24*time.Hour, log); err != nil || n != 0 {
		t.Fatalf("within retention: %d deleted (%v)", n, err)
	}
	if n, err := jobs.DeleteExpiredLetterFiles(ctx, testdb.Store(e.pool).At(clockAt(rendered.AddDate(0, 0, 32))), 30*24*time.Hour, 3*24*time.Hour, log); err != nil || n != 1 {
		t.Fatalf("after retention: %d deleted (%v)", n, err)
	}
	if _, err := os.Stat(bs[0].File); err == nil {
		t.Fatal("the PDF is still there")
	}
	if _, err := os.Stat(bs[0].Manifest); err != nil {
		t.Fatalf("the manifest went too: %v", err)
	}
	for _, b := range bs[1:] { // never posted: kept
		if _, err := os.Stat(b.File); err != nil {
			t.Fatalf("an unposted batch's PDF was deleted: %v", err)
		}
	}
	after, _ := notice.ListLetterBatches(ctx, e.pool, notice.BatchFilter{}, rendered)
	if after[0].FilesDeleted == nil || after[0].SHA256 != bs[0].SHA256 {
		t.Fatalf("batch after deletion: %+v", after[0])
	}
	// The batches never acknowledged hold codes too: their PDFs go once the
	// retention has passed after the posting SLA (before: never).
	if len(bs) < 2 {
		t.Fatalf("%d batches: the test needs one never acknowledged", len(bs))
	}
	if n, err := jobs.DeleteExpiredLetterFiles(ctx, testdb.Store(e.pool).At(clockAt(rendered.AddDate(0, 0, 34))), 30*24*time.Hour, 3*24*time.Hour, log); err != nil || n != len(bs)-1 {
		t.Fatalf("past the SLA and the retention: %d deleted (%v), want the %d never acknowledged", n, err, len(bs)-1)
	}
	if _, err := os.Stat(bs[1].File); err == nil {
		t.Fatal("a never acknowledged batch's PDF is still there")
	}
	if n := e.count(t, `SELECT count(*) FROM audit_event WHERE action = 'letters.files_deleted' AND details::text LIKE '%never_acknowledged%'`); n != 1 {
		t.Fatalf("%d audit events for never acknowledged batches' files", n)
	}
}

// An extension states, stores and prints the day the operator chose, on
// every channel; an opposed person is sent nothing (nothing left pending).
// (Before: extended on day 41, emails told and stored day 41 + 42 and
// letters printed later still; an opposed person's extension letter stayed
// pending forever.)
func TestExtensionStatesTheChosenDayOnEveryChannel(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 80, nil, 40, 0.5)
	t0 := time.Date(2027, 1, 11, 10, 0, 0, 0, provisioning.Paris)
	var now atomic.Pointer[time.Time]
	now.Store(&t0)
	clock := func() time.Time { return *now.Load() }
	e.deps.Clock = clock
	e.runUntilIdle(t)
	ctx := context.Background()
	var opposedID int64
	var birth time.Time
	e.pool.QueryRow(ctx, `SELECT a.id, p.birth_date FROM account a JOIN person p ON p.id = a.person_id WHERE a.state = 'notified' ORDER BY a.id LIMIT 1`).Scan(&opposedID, &birth)
	if _, err := window.Oppose(ctx, testdb.Store(e.pool).At(clock),
		window.Attempt{CodeHash: testKey.LookupHash(testKey.Derive(opposedID)), Birth: birth, Channel: "web", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	day41 := t0.AddDate(0, 0, 41)
	now.Store(&day41)
	chosen := time.Date(2027, 3, 12, 0, 0, 0, 0, provisioning.Paris)
	if _, err := wave.Extend(ctx, testdb.Store(e.pool).At(clock), "w1", chosen, "olga"); err != nil {
		t.Fatal(err)
	}
	ins, _ := jobs.NewInsertClient(e.pool)
	if _, err := ins.Insert(ctx, jobs.SendExtensionsArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	e.runUntilIdle(t)
	want := time.Date(2027, 3, 12, 23, 59, 59, 0, provisioning.Paris)
	emails := e.count(t, `SELECT count(*) FROM notice WHERE kind = 'extension' AND channel = 'email' AND status = 'sent' AND deadline = $1`, want)
	letters := e.count(t, `SELECT count(*) FROM notice WHERE kind = 'extension' AND channel = 'letter' AND status = 'printed' AND deadline = $1`, want)
	wrong := e.count(t, `SELECT count(*) FROM notice WHERE kind = 'extension' AND (deadline IS DISTINCT FROM $1 OR status NOT IN ('sent', 'printed'))`, want)
	if emails == 0 || letters == 0 || wrong != 0 {
		t.Fatalf("extension notices: %d emails and %d letters stating the chosen day, %d otherwise", emails, letters, wrong)
	}
	if n := e.count(t, `SELECT count(*) FROM account WHERE state IN ('notified', 'opposed') AND deadline <> $1`, want); n != 0 {
		t.Fatalf("%d accounts whose deadline is not the chosen day", n)
	}
	if n := e.count(t, `SELECT count(*) FROM notice WHERE account_id = $1 AND kind = 'extension'`, opposedID); n != 0 {
		t.Fatalf("the opposed person got %d extension notice(s)", n)
	}
}

// A letter La Poste brings back after the window activated its person says
// they were never told: they are unreachable again, listed for the call
// centre (before: an active account for someone never told, only listed).
// A return that cannot be true — of a letter never posted, or dated before
// its posting day — is refused with its line (before: recorded).
func TestLetterReturnedAfterActivation(t *testing.T) {
	t.Parallel()
	e := setupChunks(t, 30, nil, 40, -1) // letters only
	e.runUntilIdle(t)
	ctx := context.Background()
	bs, _ := notice.ListLetterBatches(ctx, e.pool, notice.BatchFilter{}, time.Now())
	if len(bs) < 2 {
		t.Fatalf("%d letter batches; the test needs one posted and one not", len(bs))
	}
	for _, b := range bs[1:] {
		if _, err := notice.AcknowledgePosting(ctx, testdb.Store(e.pool), b.File, time.Now(), "", notice.PostingOptions{Operator: "imprimeur"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := window.Close(ctx, testdb.Store(e.pool).At(clockAt(time.Now().AddDate(0, 3, 0))), 0, 0); err != nil {
		t.Fatal(err)
	}
	var posted, other, unposted, accountID int64
	e.pool.QueryRow(ctx, `SELECT n.id, n.account_id FROM notice n JOIN account a ON a.id = n.account_id
		WHERE n.channel = 'letter' AND n.status = 'sent' AND a.state = 'active' ORDER BY n.id LIMIT 1`).Scan(&posted, &accountID)
	e.pool.QueryRow(ctx, `SELECT id FROM notice WHERE channel = 'letter' AND status = 'sent' AND id <> $1 ORDER BY id LIMIT 1`, posted).Scan(&other)
	e.pool.QueryRow(ctx, `SELECT id FROM notice WHERE channel = 'letter' AND status = 'printed' ORDER BY id LIMIT 1`).Scan(&unposted)
	if posted == 0 || other == 0 || unposted == 0 {
		t.Fatalf("letters: posted %d, another posted %d, printed %d", posted, other, unposted)
	}
	today, yesterday := time.Now().In(provisioning.Paris).Format(time.DateOnly), time.Now().In(provisioning.Paris).AddDate(0, 0, -1).Format(time.DateOnly)
	file := fmt.Sprintf("reference,returned_on,reason\nENS-%d,%s,NPAI\nENS-%d,%s,NPAI\nENS-%d,%s,NPAI\n", posted, today, unposted, today, other, yesterday)
	res, err := notice.RecordReturns(ctx, testdb.Store(e.pool), strings.NewReader(file), "la-poste")
	if err != nil || res.Returned != 1 || res.Unreachable != 1 || res.AfterActivation != 1 || len(res.Rejected) != 2 {
		t.Fatalf("returns: %+v %v; want one returned after activation, two refused", res, err)
	}
	if got := res.Rejected[0].Reason + " / " + res.Rejected[1].Reason; !strings.Contains(got, "never posted") || !strings.Contains(got, "before the letter's posting day") {
		t.Fatalf("refused returns: %s", got)
	}
	var state string
	e.pool.QueryRow(ctx, `SELECT state FROM account WHERE id = $1`, accountID).Scan(&state)
	if state != "unreachable" {
		t.Fatalf("a person whose letter came back after the window activated them is %s; want unreachable", state)
	}
}
