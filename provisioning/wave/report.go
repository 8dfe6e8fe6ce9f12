package wave

import (
	"context"
	"fmt"
	"time"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/notice"
)

// Report is everything an auditor reads about a wave. It holds counts
// only, no personal data, and nothing that depends on when it is read
// except what the data says.
type Report struct {
	Wave      *provisioning.Wave           `json:"wave"`
	Rehearsal bool                         `json:"rehearsal_window"`
	Accounts  map[provisioning.State]int64 `json:"accounts"`
	Notices   map[string]map[string]int64  `json:"notices"`
	Fallbacks map[string]int64             `json:"fallbacks"`
	Failures  map[string]int64             `json:"failures"`
	// Unreachable counts, by reason, the people no channel reaches: listed
	// for the call centre, never activated.
	Unreachable map[string]int64 `json:"unreachable"`
	// Letters: batches by posting state, people waiting for a posting.
	Letters notice.PostingStatus `json:"letter_batches"`
	// AfterActivation counts failures reported once the account was
	// already active (bounces, returned letters): those people were never
	// told, and the call centre should reach them.
	AfterActivation map[string]int64 `json:"failed_after_activation"`
	// Reconciliation is ens reconcile's verdict, when the caller ran it:
	// the anomalies by check (empty when clean).
	Reconciliation *Reconciliation `json:"reconciliation,omitempty"`
	// Rejects counts, by reason, the rows rejected by the imports before the
	// launch that belong to the wave's departments (every rejected row for a
	// wave of all departments); RejectsUnplaced counts the rejected rows
	// whose department nothing gives (they may be the wave's).
	Rejects         map[string]int64 `json:"import_rejects"`
	RejectsUnplaced int64            `json:"import_rejects_without_department"`
	Imports         int64            `json:"distinct_files_imported"`
	Oppositions     OppositionStats  `json:"oppositions"`
	// ActivatedByHolder counts the accounts their holder activated before
	// the window ended (with code and birth date).
	ActivatedByHolder int64                       `json:"activated_by_holder"`
	PerDay            []DayCount                  `json:"per_day"`
	Jobs              map[string]map[string]int64 `json:"river_jobs"`
	JobErrors         map[string]int64            `json:"river_job_errors"`
	// FirstNotice and LastNotice are when the first and the last emails
	// were accepted by the relay; FirstPosted and LastPosted the first and
	// last days letters were posted (a letter has a posting day, not an
	// hour).
	FirstNotice *time.Time `json:"first_notice_at"`
	LastNotice  *time.Time `json:"last_notice_at"`
	FirstPosted *time.Time `json:"first_letters_posted_on"`
	LastPosted  *time.Time `json:"last_letters_posted_on"`
	// LastDeadline is the latest deadline of the wave's accounts and of the
	// letters still to post (printed, or to print again).
	LastDeadline *time.Time `json:"last_deadline"`
	// AsOf is the moment the report describes; AuditHead the audit log's
	// last event then (its id and hash), for an auditor to anchor it.
	AsOf          time.Time `json:"as_of"`
	AuditHead     string    `json:"audit_head"`
	AuditOK       bool      `json:"audit_chain_ok"`
	AuditEvents   int64     `json:"audit_events"`
	AuditProblem  string    `json:"audit_problem,omitempty"`
	JobsRetention string    `json:"river_jobs_note"`
}

// Reconciliation summarises ens reconcile for a report.
type Reconciliation struct {
	Clean     bool             `json:"clean"`
	Anomalies map[string]int64 `json:"anomalies"`
}

// OppositionStats counts oppositions of a wave.
type OppositionStats struct {
	Standing  int64            `json:"standing"`
	Withdrawn int64            `json:"withdrawn"`
	Rate      float64          `json:"rate"` // standing ÷ accounts ever notified
	ByChannel map[string]int64 `json:"by_channel"`
}

// DayCount is one day of the chart.
type DayCount struct {
	Day         string `json:"day"`
	Notices     int64  `json:"notices"`
	Oppositions int64  `json:"oppositions"`
}

// BuildReport reads a wave's report.
func BuildReport(ctx context.Context, db provisioning.DBTX, name string, opts StatusOptions) (*Report, error) {
	st, err := GetStatus(ctx, db, name, opts)
	if err != nil {
		return nil, err
	}
	w, err := provisioning.GetWave(ctx, db, name)
	if err != nil {
		return nil, err
	}
	r := &Report{Wave: w, Rehearsal: w.Window.Rehearsal(), Accounts: st.Accounts, Notices: st.Notices,
		Fallbacks: map[string]int64{}, Failures: map[string]int64{}, Rejects: map[string]int64{}, Unreachable: map[string]int64{},
		Letters: st.Letters, AfterActivation: map[string]int64{},
		Jobs: map[string]map[string]int64{}, JobErrors: map[string]int64{},
		Oppositions:   OppositionStats{ByChannel: map[string]int64{}},
		JobsRetention: "River deletes finished jobs after 24 hours; older waves show only what remains"}
	pairs := func(q string, into map[string]int64, args ...any) error {
		rows, err := db.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("building wave report: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return err
			}
			into[k] = n
		}
		return rows.Err()
	}
	if err := pairs(`SELECT n.status, count(*) FROM notice n JOIN account a ON a.id = n.account_id
		WHERE a.wave_id = $1 AND n.channel = 'email' AND n.status IN ('failed', 'bounced') GROUP BY 1`, r.Fallbacks, w.ID); err != nil {
		return nil, err
	}
	if err := pairs(`SELECT coalesce(n.error, 'unknown'), count(*) FROM notice n JOIN account a ON a.id = n.account_id
		WHERE a.wave_id = $1 AND n.status IN ('failed', 'bounced') GROUP BY 1`, r.Failures, w.ID); err != nil {
		return nil, err
	}
	if err := pairs(`SELECT unreachable_reason, count(*) FROM account WHERE wave_id = $1 AND state = 'unreachable' GROUP BY 1`, r.Unreachable, w.ID); err != nil {
		return nil, err
	}
	if err := pairs(`SELECT n.channel || ' ' || n.status, count(*) FROM notice n JOIN account a ON a.id = n.account_id
		WHERE a.wave_id = $1 AND a.state = 'active' AND n.kind = 'opposition' AND n.status IN ('failed', 'bounced', 'returned')
		  AND n.seq = a.notice_round GROUP BY 1`, r.AfterActivation, w.ID); err != nil {
		return nil, err
	}
	// Each file once: re-importing the same file does not double its
	// rejects. A wave of some departments counts theirs.
	var depts []string
	if len(w.Departments) > 0 {
		depts = w.Departments
	}
	latest := `x.import_id IN (SELECT max(id) FROM registry_import WHERE started_at <= $1 GROUP BY file_sha256)`
	if err := pairs(`SELECT x.reason, count(*) FROM registry_reject x WHERE `+latest+`
		AND ($2::text[] IS NULL OR x.department = ANY($2)) GROUP BY 1`, r.Rejects, w.LaunchedAt, depts); err != nil {
		return nil, err
	}
	if depts != nil {
		if err := db.QueryRow(ctx, `SELECT count(*) FROM registry_reject x WHERE `+latest+` AND x.department IS NULL`,
			w.LaunchedAt).Scan(&r.RejectsUnplaced); err != nil {
			return nil, fmt.Errorf("counting rejects without a department: %w", err)
		}
	}
	if err := db.QueryRow(ctx, `SELECT count(DISTINCT file_sha256) FROM registry_import WHERE started_at <= $1`, w.LaunchedAt).Scan(&r.Imports); err != nil {
		return nil, err
	}
	if err := pairs(`SELECT o.channel, count(*) FROM opposition o JOIN account a ON a.id = o.account_id
		WHERE a.wave_id = $1 AND o.undone_at IS NULL GROUP BY 1`, r.Oppositions.ByChannel, w.ID); err != nil {
		return nil, err
	}
	var everNotified int64
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE o.undone_at IS NULL AND o.id IS NOT NULL),
			count(*) FILTER (WHERE o.undone_at IS NOT NULL),
			(SELECT count(*) FROM account WHERE wave_id = $1 AND notified_at IS NOT NULL AND code_hash IS NOT NULL)
		FROM opposition o JOIN account a ON a.id = o.account_id WHERE a.wave_id = $1`, w.ID).
		Scan(&r.Oppositions.Standing, &r.Oppositions.Withdrawn, &everNotified); err != nil {
		return nil, fmt.Errorf("counting oppositions: %w", err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM account WHERE wave_id = $1 AND activated_by_holder`, w.ID).
		Scan(&r.ActivatedByHolder); err != nil {
		return nil, fmt.Errorf("counting early activations: %w", err)
	}
	if everNotified > 0 {
		r.Oppositions.Rate = float64(int(10000*float64(r.Oppositions.Standing)/float64(everNotified))) / 10000
	}
	rows, err := db.Query(ctx, `WITH d AS (
			SELECT (n.sent_at AT TIME ZONE 'Europe/Paris')::date AS day, 1 AS notices, 0 AS opp FROM notice n
			JOIN account a ON a.id = n.account_id WHERE a.wave_id = $1 AND n.status IN ('sent', 'bounced', 'failed') AND n.sent_at IS NOT NULL
			UNION ALL
			SELECT (o.at AT TIME ZONE 'Europe/Paris')::date, 0, 1 FROM opposition o JOIN account a ON a.id = o.account_id
			WHERE a.wave_id = $1 AND o.undone_at IS NULL)
		SELECT day::text, sum(notices)::bigint, sum(opp)::bigint FROM d GROUP BY day ORDER BY day`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("counting per day: %w", err)
	}
	for rows.Next() {
		var d DayCount
		if err := rows.Scan(&d.Day, &d.Notices, &d.Oppositions); err != nil {
			rows.Close()
			return nil, err
		}
		r.PerDay = append(r.PerDay, d)
	}
	rows.Close()
	if err := db.QueryRow(ctx, `SELECT min(n.sent_at) FILTER (WHERE n.channel = 'email'), max(n.sent_at) FILTER (WHERE n.channel = 'email'),
			min(b.posted_on)::timestamp AT TIME ZONE 'Europe/Paris', max(b.posted_on)::timestamp AT TIME ZONE 'Europe/Paris',
			greatest(max(a.deadline), max(n.deadline) FILTER (WHERE n.status IN ('pending', 'printed')))
		FROM account a LEFT JOIN notice n ON n.account_id = a.id LEFT JOIN letter_batch b ON b.id = n.batch_id AND n.status = 'sent'
		WHERE a.wave_id = $1`, w.ID).Scan(&r.FirstNotice, &r.LastNotice, &r.FirstPosted, &r.LastPosted, &r.LastDeadline); err != nil {
		return nil, fmt.Errorf("reading notice times: %w", err)
	}
	jrows, err := db.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job WHERE args ? 'wave_id' AND (args->>'wave_id')::bigint = $1 GROUP BY 1, 2`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("reading River jobs: %w", err)
	}
	for jrows.Next() {
		var kind, state string
		var n int64
		if err := jrows.Scan(&kind, &state, &n); err != nil {
			jrows.Close()
			return nil, err
		}
		if r.Jobs[kind] == nil {
			r.Jobs[kind] = map[string]int64{}
		}
		r.Jobs[kind][state] = n
	}
	jrows.Close()
	if err := pairs(`SELECT left(e->>'error', 120), count(*) FROM river_job j, unnest(j.errors) e
		WHERE j.args ? 'wave_id' AND (j.args->>'wave_id')::bigint = $1 GROUP BY 1`, r.JobErrors, w.ID); err != nil {
		return nil, err
	}
	v, err := audit.VerifyRing(ctx, db, audit.Ring(opts.AuditPreviousKeys, opts.AuditKey))
	if err != nil {
		return nil, err
	}
	r.AuditOK, r.AuditEvents, r.AuditProblem = v.OK, v.Events, v.Problem
	r.AsOf = opts.At
	if r.AsOf.IsZero() {
		r.AsOf = time.Now()
	}
	if err := db.QueryRow(ctx, `SELECT coalesce((SELECT id::text || ' ' || encode(hash, 'hex') FROM audit_event ORDER BY id DESC LIMIT 1), '')`).
		Scan(&r.AuditHead); err != nil {
		return nil, fmt.Errorf("reading the audit log's head: %w", err)
	}
	return r, nil
}
