package provisioning_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
)

// importFixture loads a synthetic registry of n people.
func importFixture(t *testing.T, pool *pgxpool.Pool, n int64, seed uint64) {
	t.Helper()
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: n, Seed: seed})
}

// launchAll imports n people and launches wave "w" over all of them,
// returning its chunks.
func launchAll(t *testing.T, pool *pgxpool.Pool, n int64, seed uint64, opts provisioning.LaunchOptions) []provisioning.Chunk {
	t.Helper()
	importFixture(t, pool, n, seed)
	var chunks []provisioning.Chunk
	if _, err := provisioning.LaunchWave(context.Background(), pool, provisioning.WaveSpec{Name: "w", Actor: "alice"}, countChunks(&chunks), opts); err != nil {
		t.Fatal(err)
	}
	return chunks
}

// countChunks is an EnqueueFunc that records chunks instead of inserting jobs.
func countChunks(chunks *[]provisioning.Chunk) provisioning.EnqueueFunc {
	return func(_ context.Context, _ pgx.Tx, c []provisioning.Chunk) error {
		*chunks = append(*chunks, c...)
		return nil
	}
}

func TestLaunchWaveNeverCreatesAnAccountTwice(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	importFixture(t, pool, 2000, 11)
	var chunks []provisioning.Chunk
	opts := provisioning.LaunchOptions{BatchSize: 300, ChunkSize: 100}
	idf := provisioning.WaveSpec{Name: "idf", Departments: []string{"75", "92", "93", "94"}, Actor: "alice"}
	first, err := provisioning.LaunchWave(ctx, pool, idf, countChunks(&chunks), opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Created == 0 || first.Active == 0 && first.Pending == 0 {
		t.Fatalf("first launch: %+v", first)
	}
	// Relaunch: resumes a completed wave and creates nothing.
	again, err := provisioning.LaunchWave(ctx, pool, idf, countChunks(&chunks), opts)
	if err != nil || again.Created != 0 || !again.Resumed {
		t.Fatalf("relaunch: %+v, %v", again, err)
	}
	// An overlapping wave (all departments) creates accounts only for the others.
	all, err := provisioning.LaunchWave(ctx, pool, provisioning.WaveSpec{Name: "france", Actor: "bob"}, countChunks(&chunks), opts)
	if err != nil {
		t.Fatal(err)
	}
	var people, accounts, alive int64
	pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM person), (SELECT count(*) FROM account),
		(SELECT count(*) FROM person WHERE death_date IS NULL)`).Scan(&people, &accounts, &alive)
	if accounts != alive || first.Created+all.Created != accounts {
		t.Fatalf("accounts %d for %d living people (%d + %d created)", accounts, alive, first.Created, all.Created)
	}
	// Chunks cover every pending or newborn account exactly once.
	var covered int64
	for _, c := range chunks {
		var n int64
		pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE wave_id = $1 AND id BETWEEN $2 AND $3`, c.WaveID, c.FirstAccountID, c.LastAccountID).Scan(&n)
		if n > 100 {
			t.Fatalf("chunk of %d accounts, want ≤ 100", n)
		}
		covered += n
	}
	if covered != accounts {
		t.Fatalf("chunks cover %d accounts, want %d", covered, accounts)
	}
	// Newborns are active at once; nobody dead has an account.
	var badNewborn, dead int64
	pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE p.birth_date >= '2022-01-01' AND a.state <> 'active'),
		count(*) FILTER (WHERE p.death_date IS NOT NULL) FROM account a JOIN person p ON p.id = a.person_id`).Scan(&badNewborn, &dead)
	if badNewborn != 0 || dead != 0 {
		t.Fatalf("%d newborns not active, %d dead people with accounts", badNewborn, dead)
	}
	// Same name, other criteria: refused.
	if _, err := provisioning.LaunchWave(ctx, pool, provisioning.WaveSpec{Name: "idf", Actor: "x"}, countChunks(&chunks), opts); err == nil {
		t.Fatal("relaunch with other criteria accepted")
	}
}

func TestLaunchWaveLimitAndBirthYears(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	importFixture(t, pool, 1000, 5)
	var chunks []provisioning.Chunk
	res, err := provisioning.LaunchWave(ctx, pool, provisioning.WaveSpec{Name: "w", BornFrom: 1950, BornTo: 1980, Limit: 120, Actor: "a"},
		countChunks(&chunks), provisioning.LaunchOptions{BatchSize: 50})
	if err != nil || res.Created != 120 {
		t.Fatalf("limited launch: %+v %v", res, err)
	}
	var outside int64
	pool.QueryRow(ctx, `SELECT count(*) FROM account a JOIN person p ON p.id = a.person_id
		WHERE extract(year FROM p.birth_date) NOT BETWEEN 1950 AND 1980`).Scan(&outside)
	if outside != 0 {
		t.Fatalf("%d accounts outside the birth years", outside)
	}
	st, err := provisioning.GetWaveStatus(ctx, pool, "w", provisioning.StatusOptions{})
	if err != nil || st.Accounts[provisioning.StatePending] != 120 || len(st.Accounts) != len(provisioning.States) {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func TestSchemaRefusesForbiddenTransitions(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	launchAll(t, pool, 50, 1, provisioning.LaunchOptions{})
	for name, q := range map[string]string{
		"pending to active":           `UPDATE account SET state = 'active', activated_at = now() WHERE state = 'pending'`,
		"pending to opposed":          `UPDATE account SET state = 'opposed', opposed_at = now() WHERE state = 'pending'`,
		"notified without a deadline": `UPDATE account SET state = 'notified', notified_at = now() WHERE state = 'pending'`,
		"unknown state":               `UPDATE account SET state = 'frozen' WHERE state = 'pending'`,
	} {
		if _, err := pool.Exec(ctx, q); err == nil {
			t.Errorf("%s: accepted by the schema", name)
		}
	}
}

func TestGoTransitionsMirrorTheSchema(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	rows, err := pool.Query(context.Background(), `SELECT from_state, to_state FROM account_transition`)
	if err != nil {
		t.Fatal(err)
	}
	inSchema := map[[2]provisioning.State]bool{}
	for rows.Next() {
		var from, to provisioning.State
		rows.Scan(&from, &to)
		inSchema[[2]provisioning.State{from, to}] = true
	}
	rows.Close()
	n := 0
	for from, tos := range provisioning.Transitions {
		for _, to := range tos {
			n++
			if !inSchema[[2]provisioning.State{from, to}] {
				t.Errorf("Go allows %s → %s, the schema does not", from, to)
			}
		}
	}
	if n != len(inSchema) {
		t.Fatalf("Go lists %d transitions, the schema %d", n, len(inSchema))
	}
}

func TestAuditChainDetectsTampering(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	launchAll(t, pool, 300, 2, provisioning.LaunchOptions{BatchSize: 50})
	res, err := provisioning.VerifyAudit(ctx, pool)
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
	tamper := func(q string) *provisioning.VerifyResult {
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
		res, err := provisioning.VerifyAudit(ctx, pool)
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
	launchAll(t, pool, 200, 3, provisioning.LaunchOptions{BatchSize: 50})
	res, err := provisioning.VerifyAudit(ctx, pool)
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
				e       provisioning.Event
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
				h := provisioning.EventHash(forger.key, prev, ev.e, []byte(ev.details))
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
		res, err := provisioning.VerifyAudit(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK {
			t.Fatalf("a chain re-hashed with %s after an edit verifies OK: %+v", forger.name, res)
		}
		t.Logf("re-hashed with %s: %s (event %d)", forger.name, res.Problem, *res.FirstBroken)
	}
}
