package notice

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// DefaultEmailGiveUpAfter is how long a recipient's temporary refusals
// (4xx) may last before their email falls back to a letter
// (ENS_EMAIL_GIVE_UP_AFTER): MTAs keep a message queued for days.
const DefaultEmailGiveUpAfter = 72 * time.Hour

// letterGroups are the departments, by wave, that have new letters.
type letterGroups map[int64]map[string]bool

func (g letterGroups) add(waveID int64, department string) {
	if g[waveID] == nil {
		g[waveID] = map[string]bool{}
	}
	g[waveID][department] = true
}

// queueLetters queues the rendering of groups in a short transaction of its
// own, once the letters are committed: inside the transaction creating them,
// concurrent chunks would wait on each other's unique render jobs until they
// commit (measured: 59 ms per insert, the chunks of a letter-heavy wave one
// at a time). Departments go in sorted order, so two queuers never deadlock.
// A crash in between leaves letters that the periodic sweep queues.
func queueLetters(ctx context.Context, st *provisioning.Store, letters provisioning.LetterFunc, groups letterGroups) error {
	if len(groups) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		for w, ds := range groups {
			if err := letters(ctx, tx, w, keys(ds)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queueing letters (the sweep will queue them): %w", err)
	}
	return nil
}

// targetsFor reads an account's holder and the contact that receives its
// notices of kind (an SQL expression): a minor's or a protected adult's
// (tutelle) representative when the registry knows them; for the copy of
// an adult under curatelle, their curator.
func targetsFor(kind string) string {
	return `
	SELECT a.id, p.first_name, p.last_name, p.nir,
	       (g.id IS NOT NULL) AS for_guardian,
	       coalesce(CASE WHEN g.id IS NOT NULL THEN g.email ELSE p.email END, ''),
	       c.address_line2, c.address_line3, c.address_line4, c.address_line5,
	       coalesce(c.postcode, ''), coalesce(c.city, ''), coalesce(c.country, ''), coalesce(c.department, '00'),
	       a.wave_id, a.state
	FROM account a
	JOIN person p ON p.id = a.person_id
	LEFT JOIN person g ON g.nir = p.guardian_nir AND (p.birth_date > ($2::date - interval '18 years') OR p.protection = 'tutelle'
	   OR (p.protection = 'curatelle' AND ` + kind + ` = 'copy'))
	   AND g.death_date IS NULL
	CROSS JOIN LATERAL (SELECT CASE WHEN g.id IS NOT NULL AND g.postcode IS NOT NULL THEN g ELSE p END AS r) x
	CROSS JOIN LATERAL (SELECT (x.r).address_line2, (x.r).address_line3, (x.r).address_line4, (x.r).address_line5,
	       (x.r).postcode, (x.r).city, (x.r).country, (x.r).department) c`
}

var (
	// TargetSelect reads the holders and recipients of the person's own
	// notices.
	TargetSelect = targetsFor("NULL")
	// curatorTargets reads who receives the curator's copies.
	curatorTargets = targetsFor("'copy'")
	// pickedTargets follows a CTE of picked notices (pk, with their
	// account_id and kind) to their targets (t), one account lookup each. (A
	// filter on "a.id IN (SELECT account_id FROM picked)" was planned as a
	// rescan of the CTE for every row when the notice statistics were stale.)
	pickedTargets = `picked pk CROSS JOIN LATERAL (` + targetsFor("pk.kind") + `
	WHERE a.id = pk.account_id) t(id, f, l, nir, g, e, a2, a3, a4, a5, pc, c, co, d, w, st)`
)

// PrepareChunk creates the notices of one chunk of a wave's accounts — an
// opposition notice for each pending account, an information notice for each
// newborn — by email when a usable address is known, by letter otherwise —
// and returns the email notices still to send; letters are queued through
// letters. Idempotent: a retried chunk finds its notices and skips those
// already sent. An account's code lookup hash is stored when it becomes
// notified (Sent.CodeHash).
func PrepareChunk(ctx context.Context, st *provisioning.Store, waveID, first, last int64, letters provisioning.LetterFunc) ([]provisioning.Target, error) {
	var out []provisioning.Target
	groups := letterGroups{}
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		// A chunk's statements touch its few hundred accounts, their people
		// and notices, by key: nested loops. The generic plan of its
		// targets' query hashed the whole person table instead (100–400 ms
		// a chunk on a 100,000-person registry), and the planner's
		// statistics lag behind a wave's new accounts and notices.
		if _, err := tx.Exec(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`); err != nil {
			return fmt.Errorf("planning the chunk's statements: %w", err)
		}
		rows, err := tx.Query(ctx, TargetSelect+`
			WHERE a.wave_id = $1 AND a.id BETWEEN $3 AND $4
			  AND (a.state = 'pending' OR (a.state = 'active' AND a.notified_at IS NULL))
			  AND NOT EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.account_id BETWEEN $3 AND $4 AND n.kind IN ('opposition', 'information')
			                  AND n.seq = a.notice_round AND (n.channel = 'letter' OR n.status IN ('sent', 'failed', 'bounced')))
			ORDER BY a.id FOR UPDATE OF a`, waveID, provisioning.Day(now), first, last)
		if err != nil {
			return fmt.Errorf("reading chunk accounts: %w", err)
		}
		targets, err := pgx.CollectRows(rows, ScanTarget)
		if err != nil {
			return fmt.Errorf("reading chunk accounts: %w", err)
		}
		var emailIDs, unreachableIDs []int64
		var kinds []string
		reachable := targets[:0]
		for _, t := range targets {
			t.Kind = provisioning.NoticeOpposition
			if t.State == provisioning.StateActive {
				t.Kind = provisioning.NoticeInformation
			}
			switch {
			case t.Email != "":
				t.Channel = provisioning.ChannelEmail
				emailIDs = append(emailIDs, t.AccountID)
			case t.Deliverable():
				t.Channel = provisioning.ChannelLetter
			case t.Kind == provisioning.NoticeOpposition:
				// No channel at all: never an addressless letter.
				unreachableIDs = append(unreachableIDs, t.AccountID)
				continue
			default:
				continue // a newborn's representative out of reach: the account is active anyway
			}
			kinds = append(kinds, t.Kind)
			reachable = append(reachable, t)
		}
		targets = reachable
		if err := markUnreachable(ctx, tx, st.AuditKey, unreachable{ids: unreachableIDs, reason: "no deliverable channel", now: now}); err != nil {
			return err
		}
		ids := make([]int64, len(targets))
		channels := make([]string, len(targets))
		depts := make([]*string, len(targets))
		for i, t := range targets {
			ids[i], channels[i] = t.AccountID, t.Channel
			if t.Channel == provisioning.ChannelLetter {
				depts[i] = &targets[i].Department
				groups.add(waveID, t.Department)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notice (account_id, kind, channel, department, seq)
			SELECT u.acc, u.kind::notice_kind, u.channel::notice_channel, u.dept, a.notice_round
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(acc, kind, channel, dept)
			JOIN account a ON a.id = u.acc ON CONFLICT DO NOTHING`, ids, kinds, channels, depts); err != nil {
			return fmt.Errorf("creating notices: %w", err)
		}
		var told []int64
		for _, t := range targets {
			if t.Kind == provisioning.NoticeOpposition {
				told = append(told, t.AccountID)
			}
		}
		if err := createCuratorCopies(ctx, tx, waveID, told, groups, now); err != nil {
			return err
		}

		if len(emailIDs) == 0 {
			return nil
		}
		type pending struct {
			id          int64
			attempts    int
			firstFailed *time.Time
		}
		nrows, err := tx.Query(ctx, `SELECT n.account_id, n.id, n.attempts, n.first_failed_at FROM notice n JOIN account a ON a.id = n.account_id
			WHERE n.account_id = ANY($1) AND n.channel = 'email' AND n.kind IN ('opposition', 'information') AND n.status = 'pending'
			  AND n.seq = a.notice_round`, emailIDs)
		if err != nil {
			return fmt.Errorf("reading email notices: %w", err)
		}
		byAccount := map[int64]pending{}
		for nrows.Next() {
			var acc int64
			var p pending
			if err := nrows.Scan(&acc, &p.id, &p.attempts, &p.firstFailed); err != nil {
				nrows.Close()
				return err
			}
			byAccount[acc] = p
		}
		nrows.Close()
		for _, t := range targets {
			if p, ok := byAccount[t.AccountID]; ok && t.Channel == provisioning.ChannelEmail {
				t.NoticeID, t.Attempts, t.FirstFailedAt = p.id, p.attempts, p.firstFailed
				out = append(out, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, queueLetters(ctx, st, letters, groups)
}

// ScanTarget scans a row of TargetSelect's columns.
func ScanTarget(row pgx.CollectableRow) (provisioning.Target, error) {
	var t provisioning.Target
	err := scanTargetInto(row, &t)
	return t, err
}

// scanTargetInto scans leading columns into lead, then TargetSelect's
// columns into t.
func scanTargetInto(row pgx.CollectableRow, t *provisioning.Target, lead ...any) error {
	var l2, l3, l4, l5 *string
	dest := append(lead, &t.AccountID, &t.FirstName, &t.LastName, &t.NIR, &t.ForGuardian, &t.Email, &l2, &l3, &l4, &l5,
		&t.Postcode, &t.City, &t.Country, &t.Department, &t.WaveID, &t.State)
	err := row.Scan(dest...)
	for i, l := range []*string{l2, l3, l4, l5} {
		if l != nil {
			t.Lines[i] = *l
		}
	}
	return err
}

// recipient is who receives an account's letters: their department, and
// whether their postal address is complete enough to post a letter to.
type recipient struct {
	department  string
	deliverable bool
}

// recipientsOf gives, for each account, whoever receives its letters.
func recipientsOf(ctx context.Context, tx pgx.Tx, accountIDs []int64, now time.Time) (map[int64]recipient, error) {
	if len(accountIDs) == 0 {
		return nil, nil
	}
	ts, err := targetsOf(ctx, tx, accountIDs, now)
	return recipientsFrom(ts), err
}

// recipientsFrom gives each target's account its addressee.
func recipientsFrom(ts []provisioning.Target) map[int64]recipient {
	out := make(map[int64]recipient, len(ts))
	for _, t := range ts {
		out[t.AccountID] = recipient{department: t.Department, deliverable: t.Deliverable()}
	}
	return out
}

// RecipientDepartments gives, for each account, the department of whoever
// receives its letters.
func RecipientDepartments(ctx context.Context, tx pgx.Tx, accountIDs []int64, now time.Time) (map[int64]string, error) {
	rs, err := recipientsOf(ctx, tx, accountIDs, now)
	out := make(map[int64]string, len(rs))
	for a, r := range rs {
		out[a] = r.department
	}
	return out, err
}

// targetsOf reads the accounts' holders and whoever receives their notices
// now, as the registry has them.
func targetsOf(ctx context.Context, tx pgx.Tx, accountIDs []int64, now time.Time) ([]provisioning.Target, error) {
	rows, err := tx.Query(ctx, TargetSelect+` WHERE a.id = ANY($1)`, accountIDs, provisioning.Day(now))
	if err != nil {
		return nil, fmt.Errorf("finding recipients: %w", err)
	}
	ts, err := pgx.CollectRows(rows, ScanTarget)
	if err != nil {
		return nil, fmt.Errorf("finding recipients: %w", err)
	}
	return ts, nil
}

// createLetters creates letter notices copying kind and seq from the given
// notices, each with its addressee's department, which it adds to groups.
func createLetters(ctx context.Context, tx pgx.Tx, from []int64, depts map[int64]string, waveOf map[int64]int64, groups letterGroups) error {
	dAcc, dDept := make([]int64, 0, len(depts)), make([]string, 0, len(depts))
	for a, d := range depts {
		dAcc, dDept = append(dAcc, a), append(dDept, d)
		groups.add(waveOf[a], d)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO notice (account_id, kind, topic, channel, seq, department)
		SELECT n.account_id, n.kind, n.topic, 'letter', n.seq, d.dept FROM notice n
		JOIN unnest($2::bigint[], $3::text[]) AS d(acc, dept) ON d.acc = n.account_id
		WHERE n.id = ANY($1) ON CONFLICT DO NOTHING`, from, dAcc, dDept); err != nil {
		return fmt.Errorf("creating letters: %w", err)
	}
	return nil
}

// unreachable is accounts found with no deliverable channel left, why and
// when; active says that accounts the window activated move too (a letter
// returned after activation: they were never told).
type unreachable struct {
	ids    []int64
	reason string
	now    time.Time
	active bool
}

// markUnreachable moves accounts with no deliverable channel left to
// unreachable (never activated, listed for the call centre), with the
// audit event under key.
func markUnreachable(ctx context.Context, tx pgx.Tx, key []byte, u unreachable) error {
	ids, reason, now := u.ids, u.reason, u.now
	if len(ids) == 0 {
		return nil
	}
	var moved []int64
	// An active account moves back only when the window activated it (a
	// holder who activated with their code was told).
	err := tx.QueryRow(ctx, `WITH u AS (UPDATE account SET state = 'unreachable', unreachable_reason = $2, unreachable_at = $3
			WHERE id = ANY($1) AND (state IN ('pending', 'notified') OR state = 'active' AND NOT activated_by_holder AND $4) RETURNING id)
		SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM u`, ids, reason, now, u.active).Scan(&moved)
	if err != nil {
		return fmt.Errorf("marking accounts unreachable: %w", err)
	}
	if len(moved) == 0 {
		return nil
	}
	return audit.Append(ctx, tx, key, now, audit.Event{Actor: audit.ActorSystem, Action: "account.unreachable", AccountIDs: moved,
		Details: map[string]any{"reason": reason}})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Sent is an email the SMTP server accepted.
type Sent struct {
	NoticeID  int64
	AccountID int64
	Kind      string
	At        time.Time
	Deadline  time.Time // the wave's deadline for a notice sent At
	// CodeHash is the lookup hash of the code the notice carries, stored on
	// the account when it becomes notified (nil: no code, or already stored).
	CodeHash []byte
	// RecipientHash is the keyed hash of the address the email was accepted
	// for (notify.RecipientHash), kept on the notice for bounce reports.
	RecipientHash []byte
}

// CodeHasher gives the lookup hash of an account's opposition code.
type CodeHasher func(accountID int64) []byte

// Accepted is the Sent for a notice of w of kind accepted at at.
func Accepted(w *provisioning.Wave, noticeID, accountID int64, kind string, at time.Time) Sent {
	return Sent{NoticeID: noticeID, AccountID: accountID, Kind: kind, At: at, Deadline: w.NoticeDeadline(kind, at)}
}

// MarkEmailsAccepted records emails the SMTP server has just accepted: each
// notice is sent, with its deadline, before its sender sends anything else,
// so that a crash can re-send at most the messages in flight. Their
// accounts follow in SettleAccepted; until then a pending account with a
// sent notice is what a crash leaves (SettleLeftovers). Extension notices
// change no account: they are recorded with their audit event at once
// (MarkEmailsSent).
func MarkEmailsAccepted(ctx context.Context, db provisioning.DBTX, sent []Sent) error {
	ids, ats, deadlines := make([]int64, len(sent)), make([]time.Time, len(sent)), make([]time.Time, len(sent))
	rcpts := make([][]byte, len(sent))
	for i, s := range sent {
		ids[i], ats[i], deadlines[i], rcpts[i] = s.NoticeID, s.At, s.Deadline, s.RecipientHash
	}
	if _, err := db.Exec(ctx, markEmailSentSQL, ids, ats, deadlines, rcpts); err != nil {
		return fmt.Errorf("recording accepted emails: %w", err)
	}
	return nil
}

// markEmailSentSQL records accepted emails by their notices' keys, planned
// so whatever the notice table's size (migration 023).
const markEmailSentSQL = `SELECT ens_record_accepted_emails($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::bytea[])`

// MarkEmailsSent records accepted emails, their accounts and the audit
// event in one transaction.
func MarkEmailsSent(ctx context.Context, st *provisioning.Store, wave *provisioning.Wave, sent []Sent) error {
	return settle(ctx, st, wave, sent, true)
}

// SettleAccepted moves the accounts of emails MarkEmailsAccepted recorded to
// notified with their deadline, in one transaction with the audit event.
func SettleAccepted(ctx context.Context, st *provisioning.Store, wave *provisioning.Wave, sent []Sent) error {
	return settle(ctx, st, wave, sent, false)
}

func settle(ctx context.Context, st *provisioning.Store, wave *provisioning.Wave, sent []Sent, notices bool) error {
	if len(sent) == 0 {
		return nil
	}
	ids, accs := make([]int64, len(sent)), make([]int64, len(sent))
	ats, deadlines := make([]time.Time, len(sent)), make([]time.Time, len(sent))
	rcpts := make([][]byte, len(sent))
	// The notice of a change moves no account.
	var moved []int64
	var movedAts, movedDeadlines []time.Time
	var movedHashes [][]byte
	for i, s := range sent {
		ids[i], accs[i], ats[i], deadlines[i], rcpts[i] = s.NoticeID, s.AccountID, s.At, s.Deadline, s.RecipientHash
		if s.Kind != provisioning.NoticeChange {
			moved, movedAts = append(moved, s.AccountID), append(movedAts, s.At)
			movedDeadlines, movedHashes = append(movedDeadlines, s.Deadline), append(movedHashes, s.CodeHash)
		}
	}
	return pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		var b pgx.Batch // one round trip
		if notices {
			b.Queue(markEmailSentSQL, ids, ats, deadlines, rcpts)
		}
		if len(moved) > 0 {
			b.Queue(notifyAccountsSQL, moved, movedAts, movedDeadlines, movedHashes)
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("marking emails sent and their accounts notified: %w", err)
		}
		return audit.Append(ctx, tx, st.AuditKey, st.Clock.Now(), audit.Event{Actor: audit.ActorSystem, Action: "notice.sent", WaveID: &wave.ID,
			AccountIDs: accs, Details: map[string]any{"channel": provisioning.ChannelEmail, "count": len(accs)}})
	})
}

// SettleLeftovers settles what a crash left between MarkEmailsAccepted and
// SettleAccepted for a wave's accounts first to last: accounts still
// pending (or newborns not yet marked notified) whose opposition or
// information email was accepted. It returns how many it settled.
func SettleLeftovers(ctx context.Context, st *provisioning.Store, wave *provisioning.Wave, first, last int64, codeHash CodeHasher) (int, error) {
	// From the chunk's accounts, one notice lookup each (OFFSET 0 keeps the
	// planner from flattening it): planned as a join, while the notice
	// statistics still described the table before the wave, it scanned
	// every notice at every chunk.
	rows, err := st.Pool.Query(ctx, `SELECT n.id, a.id, n.sent_at, n.kind FROM account a
		CROSS JOIN LATERAL (SELECT n.id, n.sent_at, n.kind FROM notice n WHERE n.account_id = a.id
		  AND n.kind IN ('opposition', 'information') AND n.channel = 'email' AND n.seq = a.notice_round AND n.status = 'sent' OFFSET 0) n
		WHERE a.wave_id = $1 AND a.id BETWEEN $2 AND $3
		  AND (a.state = 'pending' OR (a.state = 'active' AND a.notified_at IS NULL))
		ORDER BY n.id`, wave.ID, first, last)
	if err != nil {
		return 0, fmt.Errorf("finding unsettled emails: %w", err)
	}
	sent, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Sent, error) {
		var noticeID, accountID int64
		var at time.Time
		var kind string
		err := row.Scan(&noticeID, &accountID, &at, &kind)
		s := Accepted(wave, noticeID, accountID, kind, at)
		if kind == provisioning.NoticeOpposition {
			s.CodeHash = codeHash(accountID)
		}
		return s, err
	})
	if err != nil {
		return 0, fmt.Errorf("finding unsettled emails: %w", err)
	}
	return len(sent), SettleAccepted(ctx, st, wave, sent)
}

const notifyAccountsSQL = `UPDATE account a SET
		state = CASE WHEN a.state = 'pending' THEN 'notified' ELSE a.state END,
		notified_at = coalesce(a.notified_at, s.at),
		deadline = CASE WHEN a.state IN ('pending', 'notified', 'opposed') THEN s.deadline ELSE a.deadline END,
		code_hash = coalesce(a.code_hash, s.code_hash)
	FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::bytea[]) AS s(id, at, deadline, code_hash)
	WHERE a.id = s.id AND a.state IN ('pending', 'notified', 'opposed', 'active')`

// notifyAccounts moves pending accounts to notified with their deadline; an
// account already notified gets the new deadline (a fallback letter's printed
// date replaces the email's). Newborns, already active, get only notified_at.
func notifyAccounts(ctx context.Context, tx pgx.Tx, accs []int64, ats, deadlines []time.Time, codeHashes [][]byte) error {
	if _, err := tx.Exec(ctx, notifyAccountsSQL, accs, ats, deadlines, codeHashes); err != nil {
		return fmt.Errorf("marking accounts notified: %w", err)
	}
	return nil
}

// RecordTemporaryFailure counts a recipient's temporary refusal of an email
// notice, and remembers when the first one happened.
func RecordTemporaryFailure(ctx context.Context, db provisioning.DBTX, noticeID int64, reason string, at time.Time) error {
	_, err := db.Exec(ctx, `UPDATE notice SET attempts = attempts + 1, error = $2, first_failed_at = coalesce(first_failed_at, $3)
		WHERE id = $1 AND status = 'pending'`, noticeID, reason, at)
	if err != nil {
		return fmt.Errorf("recording email failure: %w", err)
	}
	return nil
}

// FallBackToLetter marks email notices failed (status: "failed" after an SMTP
// refusal or exhausted retries, "bounced" after a delivery report) and
// creates a letter notice for each, queued for rendering — unless there is
// no letter to send: a person with no complete postal address becomes
// unreachable (never an addressless letter), and an opposition notice
// reported failed after its account was activated gets no letter (its
// window has closed: a letter would print a deadline the form refuses); it
// is recorded and audited. A curator's copy falls back to a letter to the
// curator, filed with the curator's department; without the curator's
// postal address it stays failed, and the person's account is untouched.
// It returns the letters created.
func FallBackToLetter(ctx context.Context, st *provisioning.Store, noticeIDs []int64, status, reason string, letters provisioning.LetterFunc) (int, error) {
	n := 0
	groups := letterGroups{}
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		type failed struct {
			id, account, wave int64
			kind              string
			state             provisioning.State
		}
		rows, err := tx.Query(ctx, `UPDATE notice n SET status = $2, error = $3
			FROM account a WHERE a.id = n.account_id AND n.id = ANY($1) AND n.channel = 'email'
			  AND n.status IN ('pending', 'sent') AND a.state IN ('pending', 'notified', 'active')
			RETURNING n.id, n.account_id, a.wave_id, n.kind, a.state`, noticeIDs, status, reason)
		if err != nil {
			return fmt.Errorf("marking emails failed: %w", err)
		}
		fs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (failed, error) {
			var f failed
			err := row.Scan(&f.id, &f.account, &f.wave, &f.kind, &f.state)
			return f, err
		})
		if err != nil {
			return fmt.Errorf("marking emails failed: %w", err)
		}
		if len(fs) == 0 {
			return nil
		}
		// A curator's copy goes to the curator, and changes nothing for the
		// person, who was told: without the curator's address it stays
		// failed.
		// The notice of a change falls back to a letter when there is a
		// postal address, and stays failed otherwise: it moves no account.
		var own, copies, changes failedNotices
		var late []int64
		for _, f := range fs {
			switch {
			case f.kind == provisioning.NoticeChange:
				changes.add(f.id, f.account, f.wave)
			case f.state == provisioning.StateActive && f.kind != provisioning.NoticeInformation:
				late = append(late, f.account)
			case f.kind == provisioning.NoticeCopy:
				copies.add(f.id, f.account, f.wave)
			default:
				own.add(f.id, f.account, f.wave)
			}
		}
		recips, err := recipientsOf(ctx, tx, own.accounts, now)
		if err != nil {
			return err
		}
		curators, err := curatorsOf(ctx, tx, copies.accounts, now)
		if err != nil {
			return err
		}
		changed, err := recipientsOf(ctx, tx, changes.accounts, now)
		if err != nil {
			return err
		}
		unreachableIDs := own.letters(recips)
		undelivered := copies.letters(curators)
		changes.letters(changed)
		for _, fn := range []failedNotices{own, copies, changes} {
			if len(fn.depts) == 0 {
				continue
			}
			if err := createLetters(ctx, tx, fn.ids, fn.depts, fn.waveOf, groups); err != nil {
				return err
			}
		}
		n = len(own.depts) + len(copies.depts) + len(changes.depts)
		if err := markUnreachable(ctx, tx, st.AuditKey, unreachable{ids: unreachableIDs, reason: "email failed, no postal address", now: now}); err != nil {
			return err
		}
		var events []audit.Event
		if len(own.depts) > 0 {
			events = append(events, audit.Event{Actor: audit.ActorSystem, Action: "notice.fallback_to_letter",
				AccountIDs: keysOf(own.depts), Details: map[string]any{"status": status, "reason": reason}})
		}
		if len(copies.depts) > 0 {
			events = append(events, audit.Event{Actor: audit.ActorSystem, Action: "notice.fallback_to_letter",
				AccountIDs: keysOf(copies.depts), Details: map[string]any{"status": status, "reason": reason, "kind": provisioning.NoticeCopy}})
		}
		if len(changes.depts) > 0 {
			events = append(events, audit.Event{Actor: audit.ActorSystem, Action: "notice.fallback_to_letter",
				AccountIDs: keysOf(changes.depts), Details: map[string]any{"status": status, "reason": reason, "kind": provisioning.NoticeChange}})
		}
		if len(undelivered) > 0 {
			events = append(events, audit.Event{Actor: audit.ActorSystem, Action: "notice.copy_failed", AccountIDs: undelivered,
				Details: map[string]any{"status": status, "reason": reason, "letter": false}})
		}
		if len(late) > 0 {
			events = append(events, audit.Event{Actor: audit.ActorSystem, Action: "notice.failed_after_activation", AccountIDs: late,
				Details: map[string]any{"status": status, "reason": reason, "letter": false}})
		}
		return audit.Append(ctx, tx, st.AuditKey, now, events...)
	})
	if err != nil {
		return 0, err
	}
	return n, queueLetters(ctx, st, letters, groups)
}

// failedNotices are failed email notices that fall back to letters: their
// accounts, and once their addressees are known, each letter's department.
type failedNotices struct {
	ids, accounts []int64
	waveOf        map[int64]int64
	depts         map[int64]string
}

func (f *failedNotices) add(id, account, wave int64) {
	if f.waveOf == nil {
		f.waveOf = map[int64]int64{}
	}
	f.ids, f.accounts = append(f.ids, id), append(f.accounts, account)
	f.waveOf[account] = wave
}

// letters files each account's letter with its addressee's department, and
// returns the accounts whose addressee has no deliverable postal address.
func (f *failedNotices) letters(to map[int64]recipient) (undeliverable []int64) {
	f.depts = map[int64]string{}
	for _, a := range f.accounts {
		if r, ok := to[a]; ok && r.deliverable {
			f.depts[a] = r.department
		} else {
			undeliverable = append(undeliverable, a)
		}
	}
	return undeliverable
}

func keysOf[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
