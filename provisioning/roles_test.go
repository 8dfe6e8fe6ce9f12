package provisioning_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// tracer records every statement and argument a pool sends.
type tracer struct {
	mu   sync.Mutex
	sent []string
}

func (tr *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.sent = append(tr.sent, d.SQL)
	for _, a := range d.Args {
		if s, ok := a.(string); ok {
			tr.sent = append(tr.sent, s)
		}
	}
	return ctx
}

func (tr *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// The application role's password reaches the server as a SCRAM verifier
// only: a statement log (log_statement = ddl) never holds it (before: ALTER
// ROLE … PASSWORD '<clear>').
func TestAppPasswordNeverSentInClear(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := provisioning.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	const password = "correct horse battery staple"
	if err := provisioning.GrantApp(ctx, pool, "ens_app_scram", password); err != nil {
		t.Fatal(err)
	}
	var sent string
	for _, s := range tr.sent {
		if strings.Contains(s, password) {
			t.Fatalf("the password was sent in clear: %.120s", s)
		}
		if strings.HasPrefix(s, "SCRAM-SHA-256$4096:") {
			sent = s
		}
	}
	// PostgreSQL keeps a well-formed verifier as it is (it would hash a
	// malformed one as if it were the password).
	var stored string
	if err := pool.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = 'ens_app_scram'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if sent == "" || stored != sent {
		t.Fatalf("verifier sent %q, stored %q", sent, stored)
	}
}
