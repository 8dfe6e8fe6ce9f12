package wave

import (
	"context"
	"fmt"
	"time"

	"github.com/ens-sante/ens/provisioning"
)

// Preview is what a wave would do, read without writing anything (ens wave
// launch --dry-run): who it selects, how they would be told, what the
// letters would cost and how long dispatch would take.
type Preview struct {
	Selected         int64            `json:"selected"`
	ExcludedDeceased int64            `json:"excluded_deceased"`
	ExcludedEnrolled int64            `json:"excluded_already_enrolled"`
	Accounts         int64            `json:"accounts"`
	Newborns         int64            `json:"newborns"`
	Minors           int64            `json:"minors_via_representative"`
	ByChannel        map[string]int64 `json:"by_channel"`
	ByDepartment     map[string]int64 `json:"by_department"`
	Postage          float64          `json:"letters_postage_eur"`
	Duration         string           `json:"estimated_dispatch"`
}

// PreviewOptions price and time the preview.
type PreviewOptions struct {
	PostagePerLetter float64 // euros per letter
	EmailsPerSecond  float64 // the rate the workers sustain
	LettersPerSecond float64
	Now              time.Time
	After            int64 // only people numbered after this person id
}

// DryRun reads what launching spec would do, without writing.
func DryRun(ctx context.Context, db provisioning.DBTX, spec provisioning.WaveSpec, opts PreviewOptions) (*Preview, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	p := &Preview{ByChannel: map[string]int64{"email": 0, "letter": 0, "unreachable": 0}, ByDepartment: map[string]int64{}}
	if spec.Departments == nil {
		spec.Departments = []string{} // NULL would select nobody
	}
	var limit *int64
	if spec.Limit > 0 {
		limit = &spec.Limit
	}
	rows, err := db.Query(ctx, `WITH sel AS (
			SELECT p.*, (p.death_date IS NOT NULL) AS dead, EXISTS (SELECT 1 FROM account a WHERE a.person_id = p.id) AS enrolled
			FROM person p
			WHERE p.opposed_at IS NULL AND p.id > $7 AND (cardinality($1::text[]) = 0 OR p.department = ANY($1))
			  AND ($2::int IS NULL OR p.birth_date >= make_date($2, 1, 1))
			  AND ($3::int IS NULL OR p.birth_date < make_date($3 + 1, 1, 1))),
		elig AS (SELECT * FROM sel WHERE NOT dead AND NOT enrolled ORDER BY id LIMIT $4),
		told AS (
			SELECT e.department, e.birth_date >= $6 AS newborn, g.id IS NOT NULL AND e.birth_date > ($5::date - interval '18 years') AS minor,
			       CASE WHEN coalesce(CASE WHEN g.id IS NOT NULL THEN g.email ELSE e.email END, '') <> '' THEN 'email'
			            WHEN coalesce(r.address_line4, r.address_line5, '') <> '' AND coalesce(r.postcode, '') <> '' AND coalesce(r.city, '') <> '' THEN 'letter'
			            ELSE 'unreachable' END AS channel
			FROM elig e
			LEFT JOIN person g ON g.nir = e.guardian_nir AND (e.birth_date > ($5::date - interval '18 years') OR e.protection = 'tutelle') AND g.death_date IS NULL
			CROSS JOIN LATERAL (SELECT CASE WHEN g.id IS NOT NULL AND g.postcode IS NOT NULL THEN g.address_line4 ELSE e.address_line4 END AS address_line4,
			       CASE WHEN g.id IS NOT NULL AND g.postcode IS NOT NULL THEN g.address_line5 ELSE e.address_line5 END AS address_line5,
			       CASE WHEN g.id IS NOT NULL AND g.postcode IS NOT NULL THEN g.postcode ELSE e.postcode END AS postcode,
			       CASE WHEN g.id IS NOT NULL AND g.postcode IS NOT NULL THEN g.city ELSE e.city END AS city) r)
		SELECT 'totals', NULL, (SELECT count(*) FROM sel), (SELECT count(*) FILTER (WHERE dead) FROM sel),
		       (SELECT count(*) FILTER (WHERE enrolled AND NOT dead) FROM sel), count(*), count(*) FILTER (WHERE newborn),
		       count(*) FILTER (WHERE minor) FROM told
		UNION ALL SELECT 'channel', channel, count(*), 0, 0, 0, 0, 0 FROM told GROUP BY channel
		UNION ALL SELECT 'department', coalesce(department, '?'), count(*), 0, 0, 0, 0, 0 FROM told GROUP BY department`,
		spec.Departments, nullIfZero(spec.BornFrom), nullIfZero(spec.BornTo), limit, provisioning.Day(opts.Now), provisioning.NewbornSince, opts.After)
	if err != nil {
		return nil, fmt.Errorf("previewing the wave: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var key *string
		var a, b, c, d, e, f int64
		if err := rows.Scan(&kind, &key, &a, &b, &c, &d, &e, &f); err != nil {
			return nil, fmt.Errorf("previewing the wave: %w", err)
		}
		switch kind {
		case "totals":
			p.Selected, p.ExcludedDeceased, p.ExcludedEnrolled, p.Accounts, p.Newborns, p.Minors = a, b, c, d, e, f
		case "channel":
			p.ByChannel[*key] = a
		case "department":
			p.ByDepartment[*key] = a
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("previewing the wave: %w", err)
	}
	p.Postage = float64(p.ByChannel["letter"]) * opts.PostagePerLetter
	var secs float64
	if opts.EmailsPerSecond > 0 {
		secs = max(secs, float64(p.ByChannel["email"])/opts.EmailsPerSecond)
	}
	if opts.LettersPerSecond > 0 {
		secs += float64(p.ByChannel["letter"]) / opts.LettersPerSecond
	}
	p.Duration = (time.Duration(secs) * time.Second).String()
	return p, nil
}
