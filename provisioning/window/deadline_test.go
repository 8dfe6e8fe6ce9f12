package window_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/registry"
	"github.com/ens-sante/ens/provisioning/window"
)

// The window ends at 23:59:59 of the printed day where the person lives, and
// never before it ends in Paris: a person in Guadeloupe opposing at 23:30
// local on "5 mai inclus" — 05:30 the next morning in Paris — is on time.
// Before, the window ended at 23:59:59 Paris time, 17:59 in Guadeloupe.
func TestOverseasWindowEndsAtLocalMidnight(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	file := "nir,last_name,first_name,birth_date,email,address_line4,postcode,city\n" +
		"255081416802538,Martin,Zoé,1955-08-12,,1 rue Frébault,97110,Pointe-à-Pitre\n" +
		"284052A32102552,Payet,Gaëlle,1984-05-02,,2 rue de Paris,97400,Saint-Denis\n"
	if res, err := registry.Import(ctx, testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{}); err != nil || res.Accepted != 2 {
		t.Fatalf("import: %+v %v", res, err)
	}
	testdb.Launch(t, pool, provisioning.WaveSpec{Name: "w", Actor: "t"})
	printed := provisioning.EndOfDay(time.Date(2027, 5, 5, 12, 0, 0, 0, provisioning.Paris))
	birth := map[string]time.Time{"971": time.Date(1955, 8, 12, 0, 0, 0, 0, time.UTC), "974": time.Date(1984, 5, 2, 0, 0, 0, 0, time.UTC)}
	hash := map[string][]byte{"971": []byte("Zoé 971"), "974": []byte("Gaëlle4")}
	for dept, h := range hash {
		if _, err := pool.Exec(ctx, `UPDATE account a SET state = 'notified', notified_at = $2, deadline = $3, code_hash = $4
			FROM person p WHERE p.id = a.person_id AND p.department = $1`, dept, printed.AddDate(0, 0, -42), printed, h); err != nil {
			t.Fatal(err)
		}
	}
	at := func(clock time.Time) *provisioning.Store {
		return testdb.Store(pool).At(func() time.Time { return clock })
	}
	for _, tc := range []struct {
		name, dept string
		at         time.Time
		wantErr    error
	}{
		{"Réunion, after midnight in Paris (02:30 local)", "974", time.Date(2027, 5, 6, 0, 30, 0, 0, provisioning.Paris), window.ErrWindowClosed},
		{"Guadeloupe, 23:30 local (05:30 in Paris)", "971", time.Date(2027, 5, 5, 23, 30, 0, 0, provisioning.TimeZone("971")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := window.Oppose(ctx, at(tc.at), window.Attempt{CodeHash: hash[tc.dept], Birth: birth[tc.dept], Channel: "web", Actor: "t"})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("opposing at %s: got %v, want %v", tc.at, err, tc.wantErr)
			}
		})
	}
	// The database and the Go code hold the same rule.
	for _, dept := range []string{"75", "2A", "971", "972", "973", "974", "975", "976", "977", "978", "986", "987", "988", "99", ""} {
		for _, d := range []time.Time{printed, printed.Add(-3 * time.Hour), provisioning.EndOfDay(time.Date(2027, 1, 10, 0, 0, 0, 0, provisioning.Paris))} {
			var got time.Time
			if err := pool.QueryRow(ctx, `SELECT ens_local_deadline($1, $2)`, d, dept).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := provisioning.LocalDeadline(d, dept); !got.Equal(want) {
				t.Errorf("department %q, deadline %s: the database says %s, the code %s", dept, d, got, want)
			}
		}
	}
}

// Oppositions without the code are capped per agent and per day: a stolen
// agent account cannot refuse for a whole region (before: no cap).
func TestAgentOppositionsAreCappedPerDay(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	file := testdb.RegistryHeader + "255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n" +
		"284052A32102552,Payet,Gaëlle,1984-05-02,g@example.fr,,,,,\n"
	if _, err := registry.Import(ctx, testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	oppose := func(nir, birth, agent string) error {
		b, _ := time.Parse(time.DateOnly, birth)
		_, err := window.OpposeByAgent(ctx, testdb.Store(pool), window.AgentOpposition{NIR: provisioning.NIR(nir), BirthDate: b,
			Operator: agent, IdentityCheckedBy: "bob", DailyCap: 1})
		return err
	}
	if err := oppose("255081416802538", "1955-08-12", "olga"); err != nil {
		t.Fatal(err)
	}
	var capped *window.AgentCapError
	if err := oppose("284052A32102552", "1984-05-02", "olga"); !errors.As(err, &capped) || capped.Cap != 1 {
		t.Fatalf("the agent's second opposition of the day under a cap of 1: %v", err)
	}
	if err := oppose("284052A32102552", "1984-05-02", "yann"); err != nil {
		t.Fatalf("another agent's: %v", err)
	}
}
