package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ens-sante/ens/provisioning"
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

// Append appends events to the hash-chained log inside tx, the
// transaction that makes the change they record.
func Append(ctx context.Context, tx pgx.Tx, key []byte, now time.Time, events ...Event) error {
	return AppendAfter(ctx, tx, &pgx.Batch{}, key, now, events...)
}

// AppendAfter sends b — statements of the change the events record,
// their results read by their queued functions — together with the audit
// log's lock and head, in one round trip, then appends the events: the lock
// is held from there to the commit, and a change recorded this way costs
// no round trip of its own.
func AppendAfter(ctx context.Context, tx pgx.Tx, b *pgx.Batch, key []byte, now time.Time, events ...Event) error {
	if len(events) == 0 {
		return tx.SendBatch(ctx, b).Close()
	}
	// A batch runs its statements in order, so the head is read under the
	// lock.
	var lastID int64
	prev := genesisHash
	b.Queue("SELECT pg_advisory_xact_lock($1)", auditLock).Exec(func(pgconn.CommandTag) error { return nil })
	b.Queue("SELECT id, hash FROM audit_event ORDER BY id DESC LIMIT 1").QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&lastID, &prev); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading the audit chain's head: %w", err)
		}
		return nil
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("recording a change and locking the audit log: %w", err)
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
		h := eventHash(key, prev, e, details)
		rows[i] = []any{e.ID, e.At, e.Actor, e.Action, e.WaveID, e.AccountIDs, string(details), prev, h, key != nil}
		prev = h
	}
	var err error
	if len(rows) == 1 {
		_, err = tx.Exec(ctx, `INSERT INTO audit_event (id, at, actor, action, wave_id, account_ids, details, prev_hash, hash, keyed)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, rows[0]...)
	} else {
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_event"},
			[]string{"id", "at", "actor", "action", "wave_id", "account_ids", "details", "prev_hash", "hash", "keyed"},
			pgx.CopyFromRows(rows))
	}
	if err != nil {
		return fmt.Errorf("appending %d audit events: %w", len(rows), err)
	}
	return nil
}

// eventHash chains an event to its predecessor: an HMAC under key when one
// is given, plain SHA-256 otherwise. Every stored field is covered.
func eventHash(key, prev []byte, e Event, details []byte) []byte {
	h := sha256.New()
	if key != nil {
		h = hmac.New(sha256.New, key)
		h.Write([]byte("ens-audit-chain-v1"))
	}
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
	OK     bool  `json:"ok"`
	Events int64 `json:"events"`
	// Unkeyed counts the events chained without ENS_AUDIT_KEY (written
	// before it was set): whoever owns the tables could have re-hashed them;
	// only an anchor taken since vouches for them.
	Unkeyed     int64  `json:"unkeyed"`
	LastUnkeyed int64  `json:"last_unkeyed,omitempty"`
	FirstBroken *int64 `json:"first_broken,omitempty"`
	Problem     string `json:"problem,omitempty"`
	// unvouched: the only problem is unkeyed events under a key, which a
	// signed anchor may vouch for (VerifyAnchored).
	unvouched bool
}

// Verify walks the whole chain in id order and names the first event
// that was changed, removed or inserted out of order, checking keyed events
// with key (ENS_AUDIT_KEY). An unkeyed event after a keyed one is a
// break: the chain was re-hashed by someone without the key.
func Verify(ctx context.Context, db provisioning.DBTX, key []byte) (*VerifyResult, error) {
	return VerifyRing(ctx, db, Ring(nil, key))
}

// Keyring is the audit keys a log was chained with, oldest first, the
// current one last: a rotated key stays in it, so that the events it
// chained still verify.
type Keyring [][]byte

// Ring is the keyring of previous keys (oldest first) and the current one;
// empty when there is no current key.
func Ring(previous [][]byte, current []byte) Keyring {
	if current == nil {
		return nil
	}
	return append(append(Keyring{}, previous...), current)
}

// current is the key new events are chained with (nil: none).
func (r Keyring) current() []byte {
	if len(r) == 0 {
		return nil
	}
	return r[len(r)-1]
}

// match is the index, from from on, of the key that hashes e as hash: the
// chain never goes back to a key it has moved on from (a forger holding a
// leaked, rotated key cannot append after the rotation); -1 if none.
func (r Keyring) match(from int, prev []byte, e Event, details, hash []byte) int {
	for i := from; i < len(r); i++ {
		if hmac.Equal(eventHash(r[i], prev, e, details), hash) {
			return i
		}
	}
	return -1
}

// VerifyRing is Verify with every key the log was chained with: each keyed
// event must verify with the key in use at that point of the chain or a
// later one, never an earlier one.
func VerifyRing(ctx context.Context, db provisioning.DBTX, ring Keyring) (*VerifyResult, error) {
	key := ring.current()
	inUse := 0
	res := &VerifyResult{OK: true}
	sawKeyed := false
	prev, want := genesisHash, int64(1)
	last := int64(0)
	for {
		rows, err := db.Query(ctx, `SELECT id, at, actor, action, wave_id, account_ids, details::text, prev_hash, hash, keyed
			FROM audit_event WHERE id > $1 ORDER BY id LIMIT 10000`, last)
		if err != nil {
			return nil, fmt.Errorf("reading the audit log: %w", err)
		}
		n := 0
		for rows.Next() {
			var e Event
			var details string
			var prevHash, hash []byte
			var keyed bool
			if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.WaveID, &e.AccountIDs, &details, &prevHash, &hash, &keyed); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading audit event: %w", err)
			}
			n++
			last = e.ID
			res.Events++
			if !keyed {
				res.Unkeyed++
				res.LastUnkeyed = e.ID
			}
			if !res.OK {
				continue
			}
			broken, id := "", e.ID
			switch {
			case e.ID != want:
				broken, id = fmt.Sprintf("event %d is missing", want), want
			case string(prevHash) != string(prev):
				broken = "does not follow the previous event"
			case keyed && key == nil:
				broken = "is chained with ENS_AUDIT_KEY: set it to verify the log"
			case !keyed && sawKeyed:
				broken = "is not keyed though events before it are: the chain was re-hashed without ENS_AUDIT_KEY"
			case !keyed && string(eventHash(nil, prev, e, []byte(details))) != string(hash):
				broken = "content does not match its hash"
			case keyed:
				if i := ring.match(inUse, prev, e, []byte(details), hash); i >= 0 {
					inUse = i
				} else if ring.match(0, prev, e, []byte(details), hash) >= 0 {
					broken = "is chained with an audit key retired before the events ahead of it: a forgery with an old key"
				} else {
					broken = "content does not match its hash"
				}
			}
			sawKeyed = sawKeyed || keyed
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
			break
		}
	}
	if res.OK && key != nil && res.Unkeyed > 0 {
		first := int64(1)
		res.OK, res.FirstBroken, res.unvouched = false, &first, true
		res.Problem = fmt.Sprintf("events 1 to %d are chained without ENS_AUDIT_KEY: whoever owns the tables could have re-hashed them; "+
			"an anchor signed with the key, taken after them, vouches for them (audit verify --anchor)", res.LastUnkeyed)
	}
	return res, nil
}
