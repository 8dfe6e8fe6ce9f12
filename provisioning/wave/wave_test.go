package wave_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

func TestLaunchWaveNeverCreatesAnAccountTwice(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: 2000, Seed: 11})
	var chunks []provisioning.Chunk
	opts := wave.LaunchOptions{BatchSize: 300, ChunkSize: 100}
	idf := provisioning.WaveSpec{Name: "idf", Departments: []string{"75", "92", "93", "94"}, Actor: "alice"}
	first, err := wave.Launch(ctx, testdb.Store(pool), idf, testdb.CollectChunks(&chunks), opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Created == 0 || first.Active == 0 && first.Pending == 0 {
		t.Fatalf("first launch: %+v", first)
	}
	// Relaunch: resumes a completed wave and creates nothing.
	again, err := wave.Launch(ctx, testdb.Store(pool), idf, testdb.CollectChunks(&chunks), opts)
	if err != nil || again.Created != 0 || !again.Resumed {
		t.Fatalf("relaunch: %+v, %v", again, err)
	}
	// An overlapping wave (all departments) creates accounts only for the others.
	all, err := wave.Launch(ctx, testdb.Store(pool), provisioning.WaveSpec{Name: "france", Actor: "bob"}, testdb.CollectChunks(&chunks), opts)
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
	if _, err := wave.Launch(ctx, testdb.Store(pool), provisioning.WaveSpec{Name: "idf", Actor: "x"}, testdb.CollectChunks(&chunks), opts); err == nil {
		t.Fatal("relaunch with other criteria accepted")
	}
}

func TestLaunchWaveLimitAndBirthYears(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: 1000, Seed: 5})
	var chunks []provisioning.Chunk
	res, err := wave.Launch(ctx, testdb.Store(pool), provisioning.WaveSpec{Name: "w", BornFrom: 1950, BornTo: 1980, Limit: 120, Actor: "a"},
		testdb.CollectChunks(&chunks), wave.LaunchOptions{BatchSize: 50})
	if err != nil || res.Created != 120 {
		t.Fatalf("limited launch: %+v %v", res, err)
	}
	var outside int64
	pool.QueryRow(ctx, `SELECT count(*) FROM account a JOIN person p ON p.id = a.person_id
		WHERE extract(year FROM p.birth_date) NOT BETWEEN 1950 AND 1980`).Scan(&outside)
	if outside != 0 {
		t.Fatalf("%d accounts outside the birth years", outside)
	}
	st, err := wave.GetStatus(ctx, pool, "w", wave.StatusOptions{})
	if err != nil || st.Accounts[provisioning.StatePending] != 120 || len(st.Accounts) != len(provisioning.States) {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func TestSchemaRefusesForbiddenTransitions(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.LaunchAll(t, pool, 50, 1, wave.LaunchOptions{})
	for name, q := range map[string]string{
		"pending to active":           `UPDATE account SET state = 'active', activated_at = now() WHERE state = 'pending'`,
		"opposed without its time":    `UPDATE account SET state = 'opposed' WHERE state = 'pending'`,
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

// Creating an account writes the account and its change, not its person:
// an account's person and wave were foreign keys, which locked each person
// the launch selected, writing every person's page (and a WAL record per
// person) a second time, and checked each reference with a query of its
// own. They are checked once per statement; what they refused is still
// refused.
func TestLaunchingAccountsLeavesTheirPeopleUnwritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	testdb.LaunchAll(t, pool, 300, 37, wave.LaunchOptions{})
	var locked, accounts int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE p.xmax::text <> '0'), count(a.id)
		FROM person p LEFT JOIN account a ON a.person_id = p.id`).Scan(&locked, &accounts); err != nil {
		t.Fatal(err)
	}
	if accounts == 0 || locked != 0 {
		t.Errorf("launching %d accounts wrote %d of their people again (a lock); want none", accounts, locked)
	}

	var waveID, personID int64
	if err := pool.QueryRow(ctx, `SELECT wave_id, person_id FROM account ORDER BY id LIMIT 1`).Scan(&waveID, &personID); err != nil {
		t.Fatal(err)
	}
	refused := func(what, code, sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != code {
			t.Errorf("%s: %v; want it refused (SQLSTATE %s)", what, err, code)
		}
	}
	refused("an account for a person who does not exist", "23503",
		`INSERT INTO account (person_id, wave_id, state) VALUES ((SELECT max(id) + 1 FROM person), $1, 'pending')`, waveID)
	refused("an account in a wave that does not exist", "23503",
		`INSERT INTO account (person_id, wave_id, state) SELECT id, $1 + 1, 'pending' FROM person p
		 WHERE NOT EXISTS (SELECT FROM account a WHERE a.person_id = p.id) LIMIT 1`, waveID)
	refused("an account moved to another person", "23514",
		`UPDATE account SET person_id = (SELECT max(id) + 1 FROM person) WHERE person_id = $1`, personID)
	refused("deleting a person whose account is not purged", "23503", `DELETE FROM person WHERE id = $1`, personID)
	refused("deleting a wave", "42501", `DELETE FROM wave WHERE id = $1`, waveID)
	refused("deleting an account", "42501", `DELETE FROM account WHERE person_id = $1`, personID)
}
