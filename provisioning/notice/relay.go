package notice

import (
	"context"
	"fmt"
	"time"

	"github.com/ens-sante/ens/provisioning"
)

// RelayStatus is what one worker process last saw of its SMTP relay.
type RelayStatus struct {
	Worker    string    `json:"worker"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`
	Reason    string    `json:"reason,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// RecordRelayState stores a worker's view of its relay (on each change, and
// at each vain probe while it is down).
func RecordRelayState(ctx context.Context, db provisioning.DBTX, worker string, up bool, since time.Time, reason string) error {
	_, err := db.Exec(ctx, `INSERT INTO smtp_relay (worker, up, since, reason, checked_at) VALUES ($1, $2, $3, nullif($4, ''), now())
		ON CONFLICT (worker) DO UPDATE SET up = excluded.up, since = excluded.since, reason = excluded.reason, checked_at = now()`,
		worker, up, since, reason)
	if err != nil {
		return fmt.Errorf("recording the SMTP relay's state: %w", err)
	}
	return nil
}

// ForgetRelayState removes a worker's row when it stops.
func ForgetRelayState(ctx context.Context, db provisioning.DBTX, worker string) error {
	if _, err := db.Exec(ctx, `DELETE FROM smtp_relay WHERE worker = $1`, worker); err != nil {
		return fmt.Errorf("forgetting the SMTP relay's state: %w", err)
	}
	return nil
}

// RelayStatuses lists what running workers saw of their relays, those
// reporting a failure first.
func RelayStatuses(ctx context.Context, db provisioning.DBTX) ([]RelayStatus, error) {
	rows, err := db.Query(ctx, `SELECT worker, up, since, coalesce(reason, ''), checked_at FROM smtp_relay ORDER BY up, worker`)
	if err != nil {
		return nil, fmt.Errorf("reading the SMTP relays' state: %w", err)
	}
	defer rows.Close()
	var out []RelayStatus
	for rows.Next() {
		var s RelayStatus
		if err := rows.Scan(&s.Worker, &s.Up, &s.Since, &s.Reason, &s.CheckedAt); err != nil {
			return nil, fmt.Errorf("reading the SMTP relays' state: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
