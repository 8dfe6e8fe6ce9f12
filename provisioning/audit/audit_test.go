package audit_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/wave"
)

func TestAuditChainDetectsTampering(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.LaunchAll(t, pool, 300, 2, wave.LaunchOptions{BatchSize: 50})
	res, err := audit.Verify(ctx, pool, testdb.AuditKey)
	if err != nil || !res.OK || res.Events < 3 {
		t.Fatalf("verify of an intact log: %+v %v", res, err)
	}
	// The database refuses edits and deletions.
	if _, err := pool.Exec(ctx, `UPDATE audit_event SET actor = 'mallory' WHERE id = 2`); err == nil {
		t.Fatal("UPDATE of an audit event accepted")
	}
	if _, err := pool.Exec(ctx, `DELETE FROM audit_event WHERE id = 2`); err == nil {
		t.Fatal("DELETE of an audit event accepted")
	}
	// Behind the trigger's back, an edit is caught and named.
	tamper := func(q string) *audit.VerifyResult {
		t.Helper()
		err := pgx.BeginFunc(ctx, testdb.OwnerPool(t, pool), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, q)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.Verify(ctx, pool, testdb.AuditKey)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := tamper(`UPDATE audit_event SET actor = 'mallory' WHERE id = 3`); r.OK || *r.FirstBroken != 3 {
		t.Fatalf("edited event not named: %+v", r)
	}
	if r := tamper(`UPDATE audit_event SET actor = 'alice' WHERE id = 3; DELETE FROM audit_event WHERE id = 2`); r.OK || *r.FirstBroken != 2 {
		t.Fatalf("removed event not named: %+v", r)
	}
}

// Whoever owns the tables can disable the audit log's triggers; with the
// chain a plain SHA-256 (before), they could also re-hash it after an edit
// and verify said OK. Keyed with ENS_AUDIT_KEY, kept outside the database,
// a re-hashed chain no longer verifies, whatever key the forger tried.
func TestAuditChainRehashedWithoutTheKeyIsCaught(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.LaunchAll(t, pool, 200, 3, wave.LaunchOptions{BatchSize: 50})
	res, err := audit.Verify(ctx, pool, testdb.AuditKey)
	if err != nil || !res.OK || res.Unkeyed != 0 {
		t.Fatalf("verify of an intact keyed log: %+v %v", res, err)
	}
	owner := testdb.OwnerPool(t, pool)
	for _, forger := range []struct {
		name string
		key  []byte
	}{{"plain SHA-256", nil}, {"a guessed key", bytes.Repeat([]byte{1}, 32)}} {
		err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica;
				UPDATE audit_event SET actor = 'mallory' WHERE id = 2`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT id, at, actor, action, wave_id, account_ids, details::text FROM audit_event ORDER BY id`)
			if err != nil {
				return err
			}
			events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ev struct {
				e       audit.Event
				details string
			}, err error) {
				err = r.Scan(&ev.e.ID, &ev.e.At, &ev.e.Actor, &ev.e.Action, &ev.e.WaveID, &ev.e.AccountIDs, &ev.details)
				return ev, err
			})
			if err != nil {
				return err
			}
			prev := make([]byte, 32)
			for _, ev := range events {
				h := audit.EventHash(forger.key, prev, ev.e, []byte(ev.details))
				if _, err := tx.Exec(ctx, `UPDATE audit_event SET prev_hash = $2, hash = $3, keyed = $4 WHERE id = $1`,
					ev.e.ID, prev, h, forger.key != nil); err != nil {
					return err
				}
				prev = h
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.Verify(ctx, pool, testdb.AuditKey)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK {
			t.Fatalf("a chain re-hashed with %s after an edit verifies OK: %+v", forger.name, res)
		}
		t.Logf("re-hashed with %s: %s (event %d)", forger.name, res.Problem, *res.FirstBroken)
	}
}

// The audit key can be rotated: events chained under the old key still
// verify when it is kept among the previous keys, and so do the anchors it
// signed; the new key alone does not vouch for them; and an event chained
// with the old key after the rotation — a forger holding the leaked key —
// is named. (Before, a log with two keys could not verify at all.)
func TestAuditKeyRotation(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	appendWith := func(key []byte, action string) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return audit.Append(ctx, tx, key, time.Now(), audit.Event{Actor: "olga", Action: action})
		}); err != nil {
			t.Fatal(err)
		}
	}
	var anchors []audit.Anchor
	anchor := func(key []byte) {
		t.Helper()
		prev := ""
		if len(anchors) > 0 {
			prev = anchors[len(anchors)-1].MAC
		}
		a, err := audit.TakeAnchor(ctx, pool, key, time.Now(), prev)
		if err != nil {
			t.Fatal(err)
		}
		anchors = append(anchors, *a)
	}
	appendWith(oldKey, "before.rotation")
	appendWith(oldKey, "before.rotation")
	anchor(oldKey)
	appendWith(newKey, "after.rotation")
	anchor(newKey)

	ring := audit.Ring([][]byte{oldKey}, newKey)
	if res, err := audit.VerifyAnchored(ctx, pool, anchors, ring); err != nil || !res.OK {
		t.Fatalf("the log and anchors with the old key kept: %+v %v", res, err)
	}
	if res, err := audit.VerifyRing(ctx, pool, audit.Ring(nil, newKey)); err != nil || res.OK {
		t.Fatalf("the new key alone vouched for events it did not chain: %+v %v", res, err)
	}
	if problem, err := audit.CheckAnchors(ctx, pool, anchors, audit.Ring(nil, newKey)); err != nil || problem == "" {
		t.Fatalf("an anchor signed with the old key passed under the new one alone (%v)", err)
	}
	appendWith(oldKey, "forged.with.the.leaked.key")
	res, err := audit.VerifyRing(ctx, pool, ring)
	if err != nil || res.OK || !strings.Contains(res.Problem, "retired") {
		t.Fatalf("an event chained with the retired key after the rotation: %+v %v", res, err)
	}
}
