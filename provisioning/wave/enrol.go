package wave

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// EnrolmentPrefix names the rolling waves: enrol-2026-12.
const EnrolmentPrefix = "enrol-"

const settingEnrolment = "enrolment"

// settingEnrolmentFrom keeps the last person id when enrolment was turned
// on: continuous enrolment takes the people imported after it, never the
// national campaign's backlog.
const settingEnrolmentFrom = "enrolment_from_person"

// ErrEnrolmentOff is returned by Enrol while enrolment is off.
var ErrEnrolmentOff = errors.New("continuous enrolment is off: turn it on with `ens enrol --enable` or ENS_ENROL=on")

// EnrolmentEnabled reports whether continuous enrolment is on.
func EnrolmentEnabled(ctx context.Context, db provisioning.DBTX) (bool, error) {
	var v string
	err := db.QueryRow(ctx, `SELECT value FROM setting WHERE name = $1`, settingEnrolment).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the enrolment setting: %w", err)
	}
	return v == "on", nil
}

// SetEnrolment turns continuous enrolment on or off, audited; it reports
// whether anything changed.
func SetEnrolment(ctx context.Context, st *provisioning.Store, on bool, actor string) (bool, error) {
	value := map[bool]string{true: "on", false: "off"}[on]
	changed := false
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		tag, err := tx.Exec(ctx, `INSERT INTO setting (name, value, changed_at, changed_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by
			WHERE setting.value <> EXCLUDED.value`, settingEnrolment, value, now, actor)
		if err != nil {
			return fmt.Errorf("saving the enrolment setting: %w", err)
		}
		if changed = tag.RowsAffected() > 0; !changed {
			return nil
		}
		var from int64
		if on {
			if err := tx.QueryRow(ctx, `INSERT INTO setting (name, value, changed_at, changed_by)
				SELECT $1, coalesce(max(id), 0)::text, $2, $3 FROM person
				ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by
				RETURNING value::bigint`, settingEnrolmentFrom, now, actor).Scan(&from); err != nil {
				return fmt.Errorf("saving where enrolment starts: %w", err)
			}
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "enrolment." + value,
			Details: map[string]any{"after_person_id": from}})
	})
	return changed, err
}

// EnrolmentWave is the name of the rolling wave for the month of clock's now.
func EnrolmentWave(clock provisioning.Clock) string {
	return EnrolmentPrefix + clock.Now().In(provisioning.Paris).Format("2006-01")
}

// Enrol creates accounts for every eligible person imported since
// enrolment was turned on and not yet enrolled, in the month's rolling
// wave — never the national campaign's backlog, which national waves
// reach: a run resumes where the last one of the month stopped (people are
// numbered as imported, so the newly imported come after it). A run creates
// at most dailyCap accounts minus those the enrolment waves created today
// (0: no cap); the rest wait for the next day's run. It is idempotent: run
// twice, the second creates nothing.
func Enrol(ctx context.Context, st *provisioning.Store, enqueue provisioning.EnqueueFunc, dailyCap int64, opts LaunchOptions) (*LaunchResult, error) {
	on, err := EnrolmentEnabled(ctx, st.Pool)
	if err != nil {
		return nil, err
	}
	if !on {
		return nil, ErrEnrolmentOff
	}
	name := EnrolmentWave(st.Clock)
	if opts.After, err = enrolmentFrom(ctx, st.Pool); err != nil {
		return nil, err
	}
	if dailyCap > 0 {
		var today int64
		if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM account a JOIN wave w ON w.id = a.wave_id
			WHERE w.name LIKE $1 AND a.created_at >= $2`, EnrolmentPrefix+"%", provisioning.StartOfDay(st.Clock.Now())).Scan(&today); err != nil {
			return nil, fmt.Errorf("counting today's enrolments: %w", err)
		}
		if today >= dailyCap {
			return &LaunchResult{Wave: &provisioning.Wave{Name: name}}, nil
		}
		opts.MaxNew = dailyCap - today
	}
	// A finished run of the month reopens when people were imported since.
	if _, err := st.Pool.Exec(ctx, `UPDATE wave SET completed_at = NULL
		WHERE name = $1 AND completed_at IS NOT NULL AND cancelled_at IS NULL
		  AND EXISTS (SELECT 1 FROM person p WHERE p.id > wave.last_person_id)`, name); err != nil {
		return nil, fmt.Errorf("reopening the enrolment wave %s: %w", name, err)
	}
	return Launch(ctx, st, provisioning.WaveSpec{Name: name, Actor: audit.ActorSystem}, enqueue, opts)
}

// enrolmentFrom is the last person id when enrolment was turned on.
func enrolmentFrom(ctx context.Context, db provisioning.DBTX) (int64, error) {
	var from int64
	err := db.QueryRow(ctx, `SELECT value::bigint FROM setting WHERE name = $1`, settingEnrolmentFrom).Scan(&from)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading where enrolment starts: %w", err)
	}
	return from, nil
}

// DryRunEnrolment reads what the next enrolment runs would select, without
// writing: the people imported since enrolment was turned on (or, while it
// is off, since now: nobody), not yet enrolled.
func DryRunEnrolment(ctx context.Context, db provisioning.DBTX, opts PreviewOptions) (*Preview, error) {
	from, err := enrolmentFrom(ctx, db)
	if err != nil {
		return nil, err
	}
	if on, err := EnrolmentEnabled(ctx, db); err != nil {
		return nil, err
	} else if !on {
		if err := db.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM person`).Scan(&from); err != nil {
			return nil, fmt.Errorf("reading the registry's last person: %w", err)
		}
	}
	opts.After = from
	return DryRun(ctx, db, provisioning.WaveSpec{}, opts)
}
