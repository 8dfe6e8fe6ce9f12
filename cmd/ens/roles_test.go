package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/pgserver"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
)

// `ens migrate`, run by the owner, creates the application role; every
// other command refuses the owner (before, every command migrated and ran as
// the owner) and a schema older than itself.
func TestMigrateCreatesTheRoleOtherCommandsRunAs(t *testing.T) {
	t.Parallel()
	ownerURL := testdb.EmptyURL(t)
	appURL := pgserver.WithUser(ownerURL, provisioning.DefaultAppRole)
	owner := &cli{t: t, url: ownerURL, dir: t.TempDir()}
	app := &cli{t: t, url: appURL, dir: owner.dir}

	if code, _, errs := app.run("wave", "list"); code == 0 || !strings.Contains(errs, "ens migrate") {
		t.Fatalf("a command on an unmigrated database: exit %d\n%s", code, errs)
	}
	if code, out, errs := owner.run("migrate"); code != 0 || !strings.Contains(out, "application role ens_app") {
		t.Fatalf("migrate as the owner: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{{"wave", "list"}, {"audit", "verify", "--unkeyed"}} {
		code, _, errs := owner.run(args...)
		if code == 0 || !strings.Contains(errs, "owns the tables") || !strings.Contains(errs, "ens_app") {
			t.Fatalf("ens %v as the owner: exit %d, want a refusal naming the fix\n%s", args, code, errs)
		}
		if code, out, errs := app.run(args...); code != 0 {
			t.Fatalf("ens %v as the application role: exit %d\n%s%s", args, code, out, errs)
		}
	}
	// Again, with a password holding quotes and a backslash: applied as given.
	pw := filepath.Join(owner.dir, "app.pw")
	os.WriteFile(pw, []byte("it's a \\ 'secret'\n"), 0o600) //nolint:errcheck
	if code, out, errs := owner.run("migrate", "--app-password-file", pw); code != 0 || !strings.Contains(out, "applied 0") {
		t.Fatalf("migrate again: exit %d\n%s%s", code, out, errs)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var hasPassword bool
	if err := conn.QueryRow(ctx, `SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1`, provisioning.DefaultAppRole).Scan(&hasPassword); err != nil || !hasPassword {
		t.Fatalf("the application role's password was not set: %v", err)
	}
}

// The role every command runs as cannot change the schema nor the audit log:
// before, it owned the tables, and `ALTER TABLE audit_event DISABLE TRIGGER`
// let it rewrite history.
func TestApplicationRoleCannotRewriteTheAuditLog(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("50", "1")
	ctx := context.Background()
	conn := c.db()
	for _, q := range []string{
		`ALTER TABLE audit_event DISABLE TRIGGER ALL`,
		`SET session_replication_role = replica`,
		`UPDATE audit_event SET actor = 'mallory'`,
		`DELETE FROM audit_event`,
		`TRUNCATE audit_event`,
		`DROP TABLE audit_event`,
		`CREATE TABLE audit_copy (id int)`,
		`ALTER TABLE account DROP CONSTRAINT account_check1`,
		`CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		`DELETE FROM ens_migration`,
		// Dropping the NIR's uniqueness is for a first load into an empty
		// table only (before: any time, letting two people share a number).
		`SELECT ens_person_nir_key(false)`,
		// The change feed is append-only.
		`UPDATE account_change SET cause = 'x'`,
		`DELETE FROM account_change`,
	} {
		if _, err := conn.Exec(ctx, q); err == nil {
			t.Errorf("the application role may: %s", q)
		}
	}
	if code, out, errs := c.run("audit", "verify", "--unkeyed"); code != 0 {
		t.Fatalf("audit verify: %d %s %s", code, out, errs)
	}
}

// Without DATABASE_URL a command stops and says how to set it; before, it
// silently started a private throwaway cluster (trust, fsync off) and
// reported success.
func TestNoDatabaseURLStopsWithAdvice(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, url: "", dir: t.TempDir()}
	for _, args := range [][]string{{"wave", "list"}, {"worker", "--until-idle"}, {"serve", "--addr", "127.0.0.1:0"}} {
		code, _, errs := c.run(args...)
		if code != 2 || !strings.Contains(errs, "DATABASE_URL is not set") || !strings.Contains(errs, "ens demo") {
			t.Fatalf("ens %v without a database: exit %d\n%s", args, code, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, "pg")); !os.IsNotExist(err) {
		t.Fatalf("a private cluster was created under the var dir: %v", err)
	}
}
