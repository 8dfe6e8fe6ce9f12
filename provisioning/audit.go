package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Actors that are not operators.
const (
	ActorSystem = "system" // jobs
	ActorPublic = "public" // the public web form and API
)

// Event is one entry of the audit log: who did what, when, to which
// accounts. Details never hold a NIR, a code, an email or an address.
type Event struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	Actor      string         `json:"actor"`
	Action     string         `json:"action"`
	WaveID     *int64         `json:"wave_id,omitempty"`
	AccountIDs []int64        `json:"account_ids,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
}

// auditLock serialises appends so that the chain has one order; it is held
// until the appending transaction ends.
const auditLock = 7_100_002

var genesisHash = make([]byte, sha256.Size)

// AppendAudit appends events to the hash-chained log inside tx, the
// transaction that makes the change they record.
func AppendAudit(ctx context.Context, tx pgx.Tx, now time.Time, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	// The lock and the head in one round trip: a batch runs its statements
	// in order, so the head is read under the lock.
	var b pgx.Batch
	b.Queue("SELECT pg_advisory_xact_lock($1)", auditLock)
	b.Queue("SELECT id, hash FROM audit_event ORDER BY id DESC LIMIT 1")
	br := tx.SendBatch(ctx, &b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return fmt.Errorf("locking the audit log: %w", err)
	}
	var lastID int64
	prev := genesisHash
	err := br.QueryRow().Scan(&lastID, &prev)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return fmt.Errorf("reading the audit chain's head: %w", err)
	}
	at := now.UTC().Truncate(time.Microsecond)
	rows := make([][]any, len(events))
	for i, e := range events {
		e.ID, e.At = lastID+int64(i)+1, at
		if e.AccountIDs == nil {
			e.AccountIDs = []int64{}
		}
		details, err := json.Marshal(e.Details)
		if err != nil || e.Details == nil {
			details = []byte("{}")
		}
		h := eventHash(prev, e, details)
		rows[i] = []any{e.ID, e.At, e.Actor, e.Action, e.WaveID, e.AccountIDs, string(details), prev, h}
		prev = h
	}
	if len(rows) == 1 {
		_, err = tx.Exec(ctx, `INSERT INTO audit_event (id, at, actor, action, wave_id, account_ids, details, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, rows[0]...)
	} else {
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_event"},
			[]string{"id", "at", "actor", "action", "wave_id", "account_ids", "details", "prev_hash", "hash"},
			pgx.CopyFromRows(rows))
	}
	if err != nil {
		return fmt.Errorf("appending %d audit events: %w", len(rows), err)
	}
	return nil
}

// eventHash chains an event to its predecessor. Every stored field is covered.
func eventHash(prev []byte, e Event, details []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	var buf [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(b)))
		h.Write(buf[:])
		h.Write(b)
	}
	field(fmt.Appendf(nil, "%d", e.ID))
	field([]byte(e.At.UTC().Format(time.RFC3339Nano)))
	field([]byte(e.Actor))
	field([]byte(e.Action))
	if e.WaveID != nil {
		field(fmt.Appendf(nil, "%d", *e.WaveID))
	} else {
		field(nil)
	}
	field(fmt.Appendf(nil, "%v", e.AccountIDs))
	field(details)
	return h.Sum(nil)
}

// VerifyResult is the outcome of walking the audit chain.
type VerifyResult struct {
	OK          bool   `json:"ok"`
	Events      int64  `json:"events"`
	FirstBroken *int64 `json:"first_broken,omitempty"`
	Problem     string `json:"problem,omitempty"`
}

// VerifyAudit walks the whole chain in id order and names the first event
// that was changed, removed or inserted out of order.
func VerifyAudit(ctx context.Context, db DBTX) (*VerifyResult, error) {
	res := &VerifyResult{OK: true}
	prev, want := genesisHash, int64(1)
	last := int64(0)
	for {
		rows, err := db.Query(ctx, `SELECT id, at, actor, action, wave_id, account_ids, details::text, prev_hash, hash
			FROM audit_event WHERE id > $1 ORDER BY id LIMIT 10000`, last)
		if err != nil {
			return nil, fmt.Errorf("reading the audit log: %w", err)
		}
		n := 0
		for rows.Next() {
			var e Event
			var details string
			var prevHash, hash []byte
			if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.WaveID, &e.AccountIDs, &details, &prevHash, &hash); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading audit event: %w", err)
			}
			n++
			last = e.ID
			res.Events++
			if !res.OK {
				continue
			}
			broken, id := "", e.ID
			switch {
			case e.ID != want:
				broken, id = fmt.Sprintf("event %d is missing", want), want
			case string(prevHash) != string(prev):
				broken = "does not follow the previous event"
			case string(eventHash(prev, e, []byte(details))) != string(hash):
				broken = "content does not match its hash"
			}
			if broken != "" {
				res.OK, res.FirstBroken, res.Problem = false, &id, broken
			}
			prev, want = hash, e.ID+1
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading the audit log: %w", err)
		}
		if n == 0 {
			return res, nil
		}
	}
}
