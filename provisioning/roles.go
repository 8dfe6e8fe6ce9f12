package provisioning

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultAppRole is the application role `ens migrate` creates: every other
// command connects as it.
const DefaultAppRole = "ens_app"

// ErrOwnerRole is returned when a command other than `ens migrate` connects
// as a role that owns the tables (or is a superuser): such a role could alter
// the schema, disable the audit log's triggers and rewrite history.
var ErrOwnerRole = errors.New("connected as a role that owns the tables")

// ErrNotMigrated is returned when the database's schema is older than this
// program's.
var ErrNotMigrated = errors.New("the database is not migrated to this version of ens")

// appGrants are the application role's rights, applied after every
// migration so that new tables get them: data, never schema. The audit log
// may be appended to and read, never changed; the migration records and
// River's may be read.
const appGrants = `
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO %[1]s;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[1]s;
GRANT TRUNCATE ON registry_stage TO %[1]s;
REVOKE UPDATE, DELETE ON audit_event FROM %[1]s;
REVOKE DELETE ON account, wave FROM %[1]s;
REVOKE UPDATE, DELETE, TRUNCATE ON account_change FROM %[1]s;
REVOKE INSERT, UPDATE, DELETE ON ens_migration, river_migration FROM %[1]s;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %[1]s;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO %[1]s;
`

// GrantApp creates the application role when it does not exist (LOGIN,
// with password when one is given) and grants it what the commands need.
// It runs as the owner, after Migrate; it is idempotent.
func GrantApp(ctx context.Context, pool *pgxpool.Pool, role, password string) error {
	if role == "" {
		role = DefaultAppRole
	}
	ident := pgx.Identifier{role}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("looking up role %s: %w", role, err)
	}
	if !exists {
		_, err := pool.Exec(ctx, "CREATE ROLE "+ident+" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
		var pgErr *pgconn.PgError
		// Two migrations at once (tests on one server): the other created it.
		alreadyThere := errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505")
		if err != nil && !alreadyThere {
			return fmt.Errorf("creating role %s: %w", role, err)
		}
	}
	if password != "" {
		// The server receives a SCRAM-SHA-256 verifier computed here, never
		// the password: a statement log (log_statement = ddl) keeps what it
		// receives. ALTER ROLE takes no parameters: PostgreSQL's own
		// format() quotes the name and the verifier as it reads them.
		verifier, err := scramVerifier(password)
		if err != nil {
			return err
		}
		var stmt string
		if err := pool.QueryRow(ctx, `SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)`, role, verifier).Scan(&stmt); err != nil {
			return fmt.Errorf("quoting the password verifier of role %s: %w", role, err)
		}
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("setting the password of role %s: %w", role, err)
		}
	}
	if _, err := pool.Exec(ctx, fmt.Sprintf(appGrants, ident)); err != nil {
		return fmt.Errorf("granting role %s its rights: %w", role, err)
	}
	return nil
}

// CheckAppRole refuses a connection that could change the schema (a role
// owning the tables, a member of it or a superuser) and a database whose
// migrations are behind this program's. Every command but `ens migrate`
// calls it before anything else.
func CheckAppRole(ctx context.Context, db DBTX) error {
	var user string
	var owner, migrated bool
	var version int
	err := db.QueryRow(ctx, `SELECT current_user,
		(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
		OR EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'account' AND pg_has_role(tableowner, 'MEMBER')),
		to_regclass('public.ens_migration') IS NOT NULL`).Scan(&user, &owner, &migrated)
	if err != nil {
		return fmt.Errorf("checking the database role: %w", err)
	}
	if owner {
		return fmt.Errorf("%w (%q): only `ens migrate` runs as the owner; every other command runs as the application role it creates (%s) — set DATABASE_URL to connect as that role", ErrOwnerRole, user, DefaultAppRole)
	}
	if migrated {
		err = db.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM ens_migration`).Scan(&version)
		if err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		}
	}
	if want := latestMigration(); version < want {
		return fmt.Errorf("%w (schema at %d, this ens needs %d): run `ens migrate` as the owner role", ErrNotMigrated, version, want)
	}
	return nil
}

// latestMigration is the highest version among the embedded migrations.
func latestMigration() int {
	files, _ := fs.Glob(migrationFS, "migrations/*.up.sql")
	latest := 0
	for _, f := range files {
		var v int
		if _, err := fmt.Sscanf(f, "migrations/%03d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

// scramIterations is PostgreSQL's default (scram_iterations).
const scramIterations = 4096

// scramVerifier is the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677), in its own format: the server can check
// a login against it and learns nothing it could replay. The password is
// used as given (an ASCII one is its own SASLprep form).
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salting the password: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("deriving the password's key: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}
