// Package reconcile proves, wave by wave, that every person the wave
// selected is accounted for: each ended in exactly one state, was told
// before any activation, with a code that works, and every letter is in
// exactly one batch and manifest. It reads the database and the letter
// manifests; it changes nothing and never reports personal data (account
// ids only).
package reconcile

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

// MaxExamples is how many account ids an anomaly lists.
const MaxExamples = 10

// Check is one verified property: Count is how many accounts (or rows)
// break it, with up to MaxExamples of their ids.
type Check struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Count       int64   `json:"count"`
	Examples    []int64 `json:"examples"`
}

// Report is a wave's reconciliation.
type Report struct {
	Wave string `json:"wave"`
	// Clean: no check found an anomaly.
	Clean  bool    `json:"clean"`
	Checks []Check `json:"checks"`
	// Selection is the launch's account: selected = created + excluded.
	Selection Selection `json:"selection"`
	// States counts the wave's accounts by state: each is in exactly one.
	States map[provisioning.State]int64 `json:"states"`
	// InProgress counts what is normal while a wave runs and is not an
	// anomaly: people whose letter is not posted yet, notices not sent yet.
	InProgress map[string]int64 `json:"in_progress"`
}

// Selection is what the launch selected and what became of it.
type Selection struct {
	Selected         int64 `json:"selected"`
	Created          int64 `json:"created"`
	ExcludedDeceased int64 `json:"excluded_deceased"`
	ExcludedEnrolled int64 `json:"excluded_already_enrolled"`
}

// check is a query returning the ids of accounts (or rows) breaking a
// property, for wave $1.
type check struct {
	name, description, query string
}

// informed: an opposition notice of the account's current round that
// reached its person (an email the relay accepted, not reported failed; a
// letter the printer posted), sent at least a window before the deadline.
const informed = `EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition' AND n.seq = a.notice_round
	AND n.status = 'sent' AND n.sent_at IS NOT NULL AND n.sent_at <= a.deadline - make_interval(secs => w.window_seconds)
	AND (n.channel = 'letter' OR n.recipient_hash IS NOT NULL))`

// hasOppositionNotice tells accounts given a code (not newborns, who only
// get an information notice).
const hasOppositionNotice = `EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition')`

var checks = []check{
	// An opposition (even withdrawn) or an early activation is the person's
	// own proof that the code reached them: such an account needs no other.
	{"active_without_proof", "active accounts whose person was not shown to be informed (an accepted email or a posted letter a window before the deadline, or their own opposition with the code)",
		`SELECT a.id FROM account a JOIN wave w ON w.id = a.wave_id WHERE a.wave_id = $1 AND a.state = 'active'
		   AND ` + hasOppositionNotice + ` AND NOT ` + informed + `
		   AND NOT EXISTS (SELECT 1 FROM opposition o WHERE o.account_id = a.id) AND NOT a.activated_by_holder`},
	{"active_without_any_notice", "active accounts of people born before 2022 with no opposition notice at all (only a newborn, or a person an agent spoke with, is active without one)",
		`SELECT a.id FROM account a JOIN person p ON p.id = a.person_id WHERE a.wave_id = $1 AND a.state = 'active'
		   AND p.birth_date < '2022-01-01' AND NOT ` + hasOppositionNotice + `
		   AND NOT EXISTS (SELECT 1 FROM opposition o WHERE o.account_id = a.id AND o.identity_checked_by IS NOT NULL)`},
	{"notified_without_dispatch", "notified accounts whose current opposition notice never left (still pending: set back, or never sent)",
		`SELECT a.id FROM account a WHERE a.wave_id = $1 AND a.state = 'notified'
		   AND NOT EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition' AND n.seq = a.notice_round
		                   AND n.status NOT IN ('pending', 'cancelled'))`},
	{"withdrawal_not_audited", "oppositions withdrawn without the audit event that withdrew them (changed behind the application's back)",
		`SELECT o.account_id FROM opposition o JOIN account a ON a.id = o.account_id WHERE a.wave_id = $1 AND o.undone_at IS NOT NULL
		   AND NOT EXISTS (SELECT 1 FROM audit_event e WHERE e.action = 'account.opposition_withdrawn' AND e.details->>'reference' = o.reference)
		   AND NOT EXISTS (SELECT 1 FROM audit_event e WHERE e.action = 'account.reinstated'
		                   AND (e.details->'opposition_withdrawn')::jsonb ? o.reference)`},
	{"replaced_number_has_account", "accounts of a person under a number another replaced (replaces_nir): one person with two accounts",
		`SELECT a.id FROM account a JOIN person p ON p.id = a.person_id JOIN nir_replacement r ON r.old_nir = p.nir
		   WHERE a.wave_id = $1 AND EXISTS (SELECT 1 FROM person q JOIN account b ON b.person_id = q.id WHERE q.nir = r.new_nir)`},
	{"opposed_without_notice", "opposed accounts with no notice sent (nobody could have their code), unless an agent checked the person's identity",
		`SELECT a.id FROM account a WHERE a.wave_id = $1 AND a.state = 'opposed'
		   AND NOT EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition' AND n.status IN ('printed', 'sent'))
		   AND NOT EXISTS (SELECT 1 FROM opposition o WHERE o.account_id = a.id AND o.undone_at IS NULL AND o.identity_checked_by IS NOT NULL)`},
	{"without_code", "notified, opposed or active accounts with a code notice but no code hash (their code would answer 'incorrect')",
		`SELECT a.id FROM account a WHERE a.wave_id = $1 AND a.state IN ('notified', 'opposed', 'active')
		   AND a.code_hash IS NULL AND ` + hasOppositionNotice},
	{"notified_without_deadline", "notified accounts, or opposed ones that were notified, without a deadline",
		`SELECT a.id FROM account a WHERE a.wave_id = $1 AND a.state IN ('notified', 'opposed') AND a.deadline IS NULL
		   AND (a.state = 'notified' OR a.notified_at IS NOT NULL)`},
	{"standing_opposition_not_opposed", "standing oppositions whose account is not opposed (reinstated, activated or closed without withdrawing it), but for a refusal read late that closed the account",
		`SELECT a.id FROM opposition o JOIN account a ON a.id = o.account_id WHERE a.wave_id = $1 AND o.undone_at IS NULL AND a.state <> 'opposed'
		   AND NOT (a.state IN ('archived', 'purged') AND EXISTS (SELECT 1 FROM archive x WHERE x.account_id = a.id AND x.reason = 'opposed_late')
		            OR a.state = 'purged' AND EXISTS (SELECT 1 FROM purge_trace t WHERE t.account_id = a.id AND t.reason = 'opposed_late'))`},
	{"opposed_without_opposition", "opposed accounts without a standing opposition",
		`SELECT a.id FROM account a WHERE a.wave_id = $1 AND a.state = 'opposed'
		   AND NOT EXISTS (SELECT 1 FROM opposition o WHERE o.account_id = a.id AND o.undone_at IS NULL)`},
	{"letter_without_batch", "letters printed or sent outside any batch, or without their page",
		`SELECT n.account_id FROM notice n JOIN account a ON a.id = n.account_id WHERE a.wave_id = $1 AND n.channel = 'letter'
		   AND n.status IN ('printed', 'sent', 'returned') AND (n.batch_id IS NULL OR n.page IS NULL)`},
	{"letter_batch_of_another_wave", "letters in a batch of another wave",
		`SELECT n.account_id FROM notice n JOIN account a ON a.id = n.account_id JOIN letter_batch b ON b.id = n.batch_id
		   WHERE a.wave_id = $1 AND b.wave_id <> a.wave_id`},
	{"unreachable_without_reason", "unreachable accounts without a reason",
		`SELECT a.id FROM account a WHERE a.wave_id = $1 AND a.state = 'unreachable' AND a.unreachable_reason IS NULL`},
	{"resend_without_request", "codes re-sent without an operator's audited request (ens code resend)",
		`SELECT n.account_id FROM notice n JOIN account a ON a.id = n.account_id WHERE a.wave_id = $1 AND n.kind = 'resend'
		   AND NOT EXISTS (SELECT 1 FROM audit_event e WHERE e.action = 'account.code_resent' AND e.wave_id = $1
		                   AND e.account_ids = ARRAY[n.account_id] AND (e.details->>'seq')::int = n.seq)`},
	{"sent_twice", "accounts with two opposition notices sent on one channel in one round",
		`SELECT n.account_id FROM notice n JOIN account a ON a.id = n.account_id WHERE a.wave_id = $1 AND n.kind = 'opposition'
		   AND n.status IN ('printed', 'sent') GROUP BY n.account_id, n.channel, n.seq HAVING count(*) > 1`},
}

// Wave reconciles the named wave, with the import figures and the letter
// manifests it names.
func Wave(ctx context.Context, db provisioning.DBTX, name string) (*Report, error) {
	w, err := provisioning.GetWave(ctx, db, name)
	if err != nil {
		return nil, err
	}
	r := &Report{Wave: w.Name, States: map[provisioning.State]int64{}, InProgress: map[string]int64{}, Checks: []Check{}}
	var accounts int64
	err = db.QueryRow(ctx, `SELECT w.selected_count, w.created_count, w.excluded_deceased, w.excluded_enrolled,
			(SELECT count(*) FROM account a WHERE a.wave_id = w.id)
		FROM wave w WHERE w.id = $1`, w.ID).Scan(&r.Selection.Selected, &r.Selection.Created, &r.Selection.ExcludedDeceased,
		&r.Selection.ExcludedEnrolled, &accounts)
	if err != nil {
		return nil, fmt.Errorf("reading the wave's launch figures: %w", err)
	}
	if w.CompletedAt != nil {
		s := r.Selection
		r.add(Check{Name: "launch_selection", Description: "people the criteria selected at launch = accounts created + excluded (deceased, already enrolled)",
			Count: abs(s.Selected - s.Created - s.ExcludedDeceased - s.ExcludedEnrolled)})
	}
	r.add(Check{Name: "accounts_created", Description: "accounts the launch recorded creating = accounts the wave holds",
		Count: abs(accounts - r.Selection.Created)})
	for _, s := range provisioning.States {
		r.States[s] = 0
	}
	rows, err := db.Query(ctx, `SELECT state, count(*) FROM account WHERE wave_id = $1 GROUP BY 1`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("counting accounts by state: %w", err)
	}
	var inStates int64
	for rows.Next() {
		var s provisioning.State
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, err
		}
		r.States[s], inStates = n, inStates+n
	}
	rows.Close()
	r.add(Check{Name: "one_state_each", Description: "every account in exactly one known state", Count: abs(inStates - accounts)})
	for _, c := range checks {
		got, err := ids(ctx, db, c.query, w.ID)
		if err != nil {
			return nil, fmt.Errorf("reconciling %s: %w", c.name, err)
		}
		r.add(Check{Name: c.name, Description: c.description, Count: got.count, Examples: got.examples})
	}
	manifests, err := checkManifests(ctx, db, w.ID)
	if err != nil {
		return nil, err
	}
	r.add(manifests)
	imports, err := ids(ctx, db, `SELECT id FROM registry_import WHERE finished_at IS NOT NULL AND read <> accepted + rejected
		AND started_at <= (SELECT launched_at FROM wave WHERE id = $1)`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("reconciling imports: %w", err)
	}
	r.add(Check{Name: "import_lines", Description: "registry imports before the launch whose lines read ≠ accepted + rejected (ids of imports)",
		Count: imports.count, Examples: imports.examples})
	var awaiting, pending int64
	err = db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE a.state = 'notified' AND NOT `+informed+`),
			count(*) FILTER (WHERE a.state = 'pending')
		FROM account a JOIN wave w ON w.id = a.wave_id WHERE a.wave_id = $1`, w.ID).Scan(&awaiting, &pending)
	if err != nil {
		return nil, fmt.Errorf("counting work in progress: %w", err)
	}
	r.InProgress["notified_awaiting_proof_of_dispatch"], r.InProgress["pending_notice"] = awaiting, pending
	r.Clean = true
	for _, c := range r.Checks {
		r.Clean = r.Clean && c.Count == 0
	}
	return r, nil
}

func (r *Report) add(c Check) {
	if c.Examples == nil {
		c.Examples = []int64{}
	}
	r.Checks = append(r.Checks, c)
}

type found struct {
	count    int64
	examples []int64
}

// ids runs a query returning ids, counting them all and keeping the first
// few, smallest first.
func ids(ctx context.Context, db provisioning.DBTX, q string, waveID int64) (found, error) {
	var f found
	err := db.QueryRow(ctx, `SELECT count(*), coalesce((array_agg(id ORDER BY id))[1:`+strconv.Itoa(MaxExamples)+`], '{}')
		FROM (`+q+`) x(id)`, waveID).Scan(&f.count, &f.examples)
	return f, err
}

// checkManifests reads every manifest of the wave's batches: each letter
// of a batch is listed in its manifest exactly once, and nowhere else but
// in the manifests of batches it was withdrawn from before posting (to be
// printed again: a batch reprinted, an address changed).
func checkManifests(ctx context.Context, db provisioning.DBTX, waveID int64) (Check, error) {
	c := Check{Name: "letters_in_manifests", Description: "letters listed, exactly once, in the manifest of their batch (account ids; a missing manifest counts its letters)"}
	rows, err := db.Query(ctx, `SELECT b.id, b.manifest, coalesce(array_agg(n.id ORDER BY n.id) FILTER (WHERE n.id IS NOT NULL), '{}'),
			coalesce(array_agg(n.account_id ORDER BY n.id) FILTER (WHERE n.id IS NOT NULL), '{}')
		FROM letter_batch b LEFT JOIN notice n ON n.batch_id = b.id WHERE b.wave_id = $1
		GROUP BY b.id, b.manifest ORDER BY b.id`, waveID)
	if err != nil {
		return c, fmt.Errorf("reading letter batches: %w", err)
	}
	type batch struct {
		id       int64
		manifest string
		notices  []int64
		accounts []int64
	}
	bs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (batch, error) {
		var b batch
		err := row.Scan(&b.id, &b.manifest, &b.notices, &b.accounts)
		return b, err
	})
	if err != nil {
		return c, fmt.Errorf("reading letter batches: %w", err)
	}
	type listing struct{ batch, notice int64 }
	withdrawn := map[listing]bool{}
	wrows, err := db.Query(ctx, `SELECT w.batch_id, w.notice_id FROM letter_withdrawal w JOIN letter_batch b ON b.id = w.batch_id
		WHERE b.wave_id = $1`, waveID)
	if err != nil {
		return c, fmt.Errorf("reading withdrawn letters: %w", err)
	}
	ws, err := pgx.CollectRows(wrows, func(r pgx.CollectableRow) (listing, error) {
		var l listing
		err := r.Scan(&l.batch, &l.notice)
		return l, err
	})
	if err != nil {
		return c, fmt.Errorf("reading withdrawn letters: %w", err)
	}
	for _, w := range ws {
		withdrawn[w] = true
	}
	listed := map[int64]int{} // notice id → times listed, over every manifest
	readable := make([]bool, len(bs))
	for i, b := range bs {
		ns, err := readManifest(b.manifest)
		if err != nil { // a missing or broken manifest counts all its letters
			c.Count += int64(len(b.accounts))
			c.Examples = appendExamples(c.Examples, b.accounts...)
			continue
		}
		readable[i] = true
		for _, n := range ns {
			if !withdrawn[listing{b.id, n}] {
				listed[n]++
			}
		}
	}
	for i, b := range bs {
		if !readable[i] {
			continue
		}
		for j, n := range b.notices {
			if listed[n] != 1 { // absent from every manifest, or listed twice
				c.Count++
				c.Examples = appendExamples(c.Examples, b.accounts[j])
			}
		}
	}
	return c, nil
}

func appendExamples(ex []int64, ids ...int64) []int64 {
	for _, id := range ids {
		if len(ex) < MaxExamples {
			ex = append(ex, id)
		}
	}
	return ex
}

// readManifest returns the notice ids a manifest lists.
func readManifest(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var out []int64
	for line := 0; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if line == 0 || len(rec) == 0 || len(rec[0]) > 0 && rec[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseInt(rec[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", line+1, err)
		}
		out = append(out, id)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// Summary is the report's view of r.
func (r *Report) Summary() *wave.Reconciliation {
	s := &wave.Reconciliation{Clean: r.Clean, Anomalies: map[string]int64{}}
	for _, c := range r.Checks {
		if c.Count > 0 {
			s.Anomalies[c.Name] = c.Count
		}
	}
	return s
}

// WaveReport builds a wave's report with its reconciliation.
func WaveReport(ctx context.Context, db provisioning.DBTX, name string, opts wave.StatusOptions) (*wave.Report, error) {
	rep, err := wave.BuildReport(ctx, db, name, opts)
	if err != nil {
		return nil, err
	}
	rc, err := Wave(ctx, db, name)
	if err != nil {
		return nil, err
	}
	rep.Reconciliation = rc.Summary()
	return rep, nil
}
