package audit

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
)

// Anchor is the audit log's head (last event id and hash, and when it
// was read), written to a file the operator ships out of the database's
// reach. The chain alone cannot show that its last events were removed: an
// anchor can — every anchored event must still be there with the same hash.
// With ENS_AUDIT_KEY an anchor carries an HMAC, so that it cannot be
// rewritten either, and names the anchor before it in its file (Prev, that
// anchor's MAC): the anchors form a chain, so a file cut back to an older
// line shows — its last anchor is old, or the next one names a missing one.
type Anchor struct {
	ID   int64     `json:"id"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
	Prev string    `json:"prev,omitempty"`
	MAC  string    `json:"mac,omitempty"`
}

func anchorMAC(key []byte, a Anchor) string {
	m := hmac.New(sha256.New, key)
	if a.Prev == "" {
		fmt.Fprintf(m, "ens-audit-anchor-v1|%d|%s|%s", a.ID, a.Hash, a.At.UTC().Format(time.RFC3339Nano))
	} else {
		fmt.Fprintf(m, "ens-audit-anchor-v2|%d|%s|%s|%s", a.ID, a.Hash, a.At.UTC().Format(time.RFC3339Nano), a.Prev)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// TakeAnchor reads the log's head as an anchor, signed with key when one
// is given, naming prev (the MAC of the anchor before it in its file; ""
// for the first).
func TakeAnchor(ctx context.Context, db provisioning.DBTX, key []byte, now time.Time, prev string) (*Anchor, error) {
	a := &Anchor{At: now.UTC(), Prev: prev}
	var hash []byte
	err := db.QueryRow(ctx, `SELECT id, hash FROM audit_event ORDER BY id DESC LIMIT 1`).Scan(&a.ID, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		hash = genesisHash
	} else if err != nil {
		return nil, fmt.Errorf("reading the audit log's head: %w", err)
	}
	a.Hash = hex.EncodeToString(hash)
	if len(key) > 0 {
		a.MAC = anchorMAC(key, *a)
	}
	// Monitoring reads when the head was last anchored (an alert when too
	// long ago); the anchor itself is kept outside the database.
	if _, err := db.Exec(ctx, `INSERT INTO audit_anchor_taken (taken_at, head_id) VALUES ($1, $2)
		ON CONFLICT (one) DO UPDATE SET taken_at = excluded.taken_at, head_id = excluded.head_id`, a.At, a.ID); err != nil {
		return nil, fmt.Errorf("recording the anchor's time: %w", err)
	}
	return a, nil
}

// ReadAnchors reads an anchors file: one JSON anchor per line.
func ReadAnchors(r io.Reader) ([]Anchor, error) {
	var out []Anchor
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var a Anchor
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return nil, fmt.Errorf("anchors file line %d: %w", line, err)
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// CheckAnchors verifies anchors against the log: each anchored event must
// still be there with its hash, and with keys each anchor's MAC must hold
// under the key in use when it was taken (never one retired before an
// earlier anchor's). It returns the first problem, or "" when every anchor
// holds.
func CheckAnchors(ctx context.Context, db provisioning.DBTX, anchors []Anchor, ring Keyring) (string, error) {
	inUse := 0
	for i, a := range anchors {
		if len(ring) > 0 {
			signed := -1
			for k := inUse; k < len(ring) && signed < 0; k++ {
				if hmac.Equal([]byte(a.MAC), []byte(anchorMAC(ring[k], a))) {
					signed = k
				}
			}
			if signed < 0 {
				return fmt.Sprintf("the anchor of event %d taken %s is not signed with ENS_AUDIT_KEY: the anchors file was altered",
					a.ID, a.At.Format(time.RFC3339)), nil
			}
			inUse = signed
		}
		if i > 0 && a.Prev != "" && a.Prev != anchors[i-1].MAC {
			return fmt.Sprintf("the anchor of event %d taken %s follows another anchor than the line before it: the anchors file was cut",
				a.ID, a.At.Format(time.RFC3339)), nil
		}
		if a.ID == 0 {
			continue
		}
		var hash []byte
		err := db.QueryRow(ctx, `SELECT hash FROM audit_event WHERE id = $1`, a.ID).Scan(&hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return "event " + strconv.FormatInt(a.ID, 10) + ", anchored " + a.At.Format(time.RFC3339) + ", was removed (the log was cut back)", nil
		}
		if err != nil {
			return "", fmt.Errorf("checking an audit anchor: %w", err)
		}
		if hex.EncodeToString(hash) != a.Hash {
			return "event " + strconv.FormatInt(a.ID, 10) + " no longer has the hash anchored " + a.At.Format(time.RFC3339) + " (the log was rewritten)", nil
		}
	}
	return "", nil
}

// VerifyAnchored walks the chain (Verify) and checks the anchors
// against it (CheckAnchors). Events chained before ENS_AUDIT_KEY was set
// pass when a signed anchor taken after them still holds.
func VerifyAnchored(ctx context.Context, db provisioning.DBTX, anchors []Anchor, ring Keyring) (*VerifyResult, error) {
	res, err := VerifyRing(ctx, db, ring)
	if err != nil || (!res.OK && !res.unvouched) {
		return res, err
	}
	key := ring.current()
	problem, err := CheckAnchors(ctx, db, anchors, ring)
	if err != nil {
		return nil, err
	}
	if problem != "" {
		last := res.Events + 1
		res.OK, res.Problem, res.FirstBroken, res.unvouched = false, problem, &last, false
		return res, nil
	}
	if res.unvouched && len(key) > 0 {
		for _, a := range anchors {
			if a.ID >= res.LastUnkeyed {
				res.OK, res.Problem, res.FirstBroken, res.unvouched = true, "", nil, false
				break
			}
		}
	}
	return res, nil
}
