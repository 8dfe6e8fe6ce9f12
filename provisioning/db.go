package provisioning

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.up.sql
var migrationFS embed.FS

// Store is what every capability works through: the database, the clock
// its changes are dated by, and the key of the audit chain that records them
// (ENS_AUDIT_KEY, kept outside the database; nil chains events without a
// key, which whoever owns the tables could rewrite unseen).
type Store struct {
	Pool     *pgxpool.Pool
	Clock    Clock
	AuditKey []byte
}

// At is the same store dated by clock: for tests, and for an act that
// counts from another day than today.
func (s *Store) At(clock Clock) *Store {
	c := *s
	c.Clock = clock
	return &c
}

// ErrNotFound is returned when a wave, account or person does not exist.
var ErrNotFound = errors.New("not found")

// DBTX is what the store's queries run on: a pool, a connection or a
// transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// OpenPool connects to PostgreSQL with a pool sized for the workers.
func OpenPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// MigrateResult lists what a migration run applied.
type MigrateResult struct {
	Applied      []string `json:"applied"`
	RiverVersion int      `json:"river_version"`
	AppRole      string   `json:"app_role,omitempty"`
}

const migrateLock = 7_100_001

// Migrate applies River's migrations then ours, in order, each at most once.
// It is idempotent and safe to run from several processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (*MigrateResult, error) {
	res := &MigrateResult{}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("preparing River migrations: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring a connection to migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock) //nolint:errcheck
	rr, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("applying River migrations: %w", err)
	}
	if n := len(rr.Versions); n > 0 {
		res.RiverVersion = rr.Versions[n-1].Version
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS ens_migration (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("creating migration table: %w", err)
	}
	files, err := fs.Glob(migrationFS, "migrations/*.up.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".up.sql")
		version, err := strconv.Atoi(name[:3])
		if err != nil {
			return nil, fmt.Errorf("migration %s has no NNN_ prefix", f)
		}
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM ens_migration WHERE version = $1)", version).Scan(&done); err != nil {
			return nil, fmt.Errorf("reading applied migrations: %w", err)
		}
		if done {
			continue
		}
		body, _ := migrationFS.ReadFile(f)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO ens_migration (version, name) VALUES ($1, $2)", version, name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("applying migration %s: %w", name, err)
		}
		res.Applied = append(res.Applied, name)
	}
	if res.RiverVersion == 0 {
		vs, err := migrator.ExistingVersions(ctx)
		if err == nil && len(vs) > 0 {
			res.RiverVersion = vs[len(vs)-1].Version
		}
	}
	return res, nil
}

// Storable reports whether s can be a stored text value: PostgreSQL holds
// UTF-8 without NUL, and a key from a URL or a form that is not one matches
// nothing (sending it would be refused as an error, a 500 to the client).
func Storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// NotFound maps pgx.ErrNoRows to ErrNotFound, naming what was looked for;
// other errors pass unchanged.
func NotFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// DatabaseUnavailable reports whether err says the database could not be
// reached or is restarting (a failover, a restart, a network cut) rather
// than that a statement was wrong: what a worker waits out.
func DatabaseUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P01–57P03: shutting down, crashed, starting.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection reset")
}
