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
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "enrolment." + value})
	})
	return changed, err
}

// EnrolmentWave is the name of the rolling wave for the month of clock's now.
func EnrolmentWave(clock provisioning.Clock) string {
	return EnrolmentPrefix + clock.Now().In(provisioning.Paris).Format("2006-01")
}

// Enrol creates accounts for every eligible person not yet enrolled, in the
// month's rolling wave: a run resumes where the last one of the month
// stopped (people are numbered as imported, so the newly imported come
// after it), and the month's first run looks at the whole registry. It is
// idempotent: run twice, the second creates nothing.
func Enrol(ctx context.Context, st *provisioning.Store, enqueue provisioning.EnqueueFunc, opts LaunchOptions) (*LaunchResult, error) {
	on, err := EnrolmentEnabled(ctx, st.Pool)
	if err != nil {
		return nil, err
	}
	if !on {
		return nil, ErrEnrolmentOff
	}
	name := EnrolmentWave(st.Clock)
	// A finished run of the month reopens when people were imported since.
	if _, err := st.Pool.Exec(ctx, `UPDATE wave SET completed_at = NULL
		WHERE name = $1 AND completed_at IS NOT NULL AND cancelled_at IS NULL
		  AND EXISTS (SELECT 1 FROM person p WHERE p.id > wave.last_person_id)`, name); err != nil {
		return nil, fmt.Errorf("reopening the enrolment wave %s: %w", name, err)
	}
	return Launch(ctx, st, provisioning.WaveSpec{Name: name, Actor: audit.ActorSystem}, enqueue, opts)
}
