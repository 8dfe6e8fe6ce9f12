package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// exitError carries a process exit code (2: refused input or usage).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{code: 2, err: err} }

// app is what every command shares: its streams, logger and configuration.
// Tests build one and call Run in-process, as the binary does.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	logFormat      string
	databaseURL    string
	varDir         string
	clock          provisioning.Clock
	pools          []*pgxpool.Pool
	workerID       string // this worker's name in smtp_relay
}

// Run executes the ens command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.close()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "ens:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "ens",
		Short:         "Provision Mon espace santé accounts in waves, with the right to refuse",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup()
		},
	}
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", envOr("ENS_LOG_FORMAT", "text"), "log format: text or json")
	root.PersistentFlags().StringVar(&a.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the application role (default $DATABASE_URL; ens migrate: the owner's)")
	root.PersistentFlags().StringVar(&a.varDir, "var-dir", envOr("ENS_VAR_DIR", "var"), "directory for local state: private database, letters, outbox, secrets")
	root.AddCommand(a.migrateCommand(), a.dbCommand(), a.registryCommand(), a.fixturesCommand(), a.waveCommand(),
		a.workerCommand(), a.demoCommand(), a.bouncesCommand(), a.mailsinkCommand(),
		a.serveCommand(), a.optoutCommand(), a.accountCommand(), a.archiveCommand(), a.auditCommand(), a.reportCommand(), a.opsCommand(), a.lettersCommand(), a.reconcileCommand(), a.enrolCommand(), a.codeCommand())
	return root
}

func (a *app) setup() error {
	var h slog.Handler
	switch a.logFormat {
	case "text":
		h = slog.NewTextHandler(a.stderr, nil)
	case "json":
		h = slog.NewJSONHandler(a.stderr, nil)
	default:
		return usageError(fmt.Errorf("--log-format must be text or json, not %q", a.logFormat))
	}
	a.log = slog.New(h)
	key, err := auditKey()
	if err != nil {
		return err
	}
	audit.SetKey(key)
	return nil
}

// warnUnkeyed says once, at the start of a long-running command, that the
// audit chain is not keyed.
func (a *app) warnUnkeyed() {
	if !audit.Keyed() {
		a.log.Warn("ENS_AUDIT_KEY is not set: the audit log is chained without a key, and whoever owns the tables could rewrite it unseen")
	}
}

// errNoDatabase is the answer to a command run without a database: the
// private cluster is for the demo and the tests, never a silent default.
var errNoDatabase = errors.New("DATABASE_URL is not set: point it (or --database-url) at the application role `ens migrate` created, " +
	"e.g. postgres://ens_app@db.internal/ens — or run `ens demo` for a throwaway private database")

// db opens a pool on the configured database as the application role: it
// refuses a role that owns the tables and a schema older than this program
// (ens migrate, run as the owner, brings it up to date).
func (a *app) db(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := a.ownerDB(ctx, maxConns)
	if err != nil {
		return nil, err
	}
	if err := provisioning.CheckAppRole(ctx, pool); err != nil {
		return nil, err
	}
	return pool, nil
}

// ownerDB opens a pool on the configured database without checking its
// role: for `ens migrate` only.
func (a *app) ownerDB(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	if a.databaseURL == "" {
		return nil, usageError(errNoDatabase)
	}
	pool, err := provisioning.OpenPool(ctx, a.databaseURL, maxConns)
	if err != nil {
		return nil, err
	}
	a.pools = append(a.pools, pool)
	return pool, nil
}

func (a *app) close() {
	for _, p := range a.pools {
		p.Close()
	}
}

func (a *app) printJSON(v any) error { return writeJSON(a.stdout, v) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
