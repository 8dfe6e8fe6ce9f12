package notice

import (
	"context"
	"fmt"

	"github.com/ens-sante/ens/provisioning"
)

// EmailRecipientHashes returns, for those of ids that are email notices
// accepted by the relay, the keyed hash of the address each went to: a
// bounce report changes a notice only when it names that address.
func EmailRecipientHashes(ctx context.Context, db provisioning.DBTX, ids []int64) (map[int64][]byte, error) {
	rows, err := db.Query(ctx, `SELECT id, recipient_hash FROM notice
		WHERE id = ANY($1) AND channel = 'email' AND recipient_hash IS NOT NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading the recipients of bounced notices: %w", err)
	}
	defer rows.Close()
	out := map[int64][]byte{}
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, fmt.Errorf("reading the recipients of bounced notices: %w", err)
		}
		out[id] = h
	}
	return out, rows.Err()
}
