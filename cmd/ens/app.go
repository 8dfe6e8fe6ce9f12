package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning"
)

// exitError carries a process exit code (2: refused input or usage).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit statuses beyond 0 (done) and 1 (failed).
const (
	exitUsage       = 2 // refused input or usage: nothing was done
	exitAuditBroken = 3 // ens audit verify: the chain does not verify
	exitAnomalies   = 4 // ens reconcile: a check fails
	exitPartial     = 5 // a file was applied except some of its lines or messages, which were refused
)

func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// app is what every command shares: its streams, logger and configuration.
// Tests build one and call Run in-process, as the binary does.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	cfg            *config
	cfgErr         error // a variable refused: every command stops with it
	clock          provisioning.Clock
	auditKey       []byte // ENS_AUDIT_KEY; nil: the audit chain is not keyed
	pools          []*pgxpool.Pool
	workerID       string // this worker's name in smtp_relay
}

// Run executes the ens command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	a.cfg, a.cfgErr = loadConfig(os.Getenv)
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
	root.PersistentFlags().StringVar(&a.cfg.LogFormat, "log-format", a.cfg.LogFormat, "log format: text or json (ENS_LOG_FORMAT)")
	root.PersistentFlags().StringVar(&a.cfg.DatabaseURL, "database-url", a.cfg.DatabaseURL, "PostgreSQL URL of the application role (DATABASE_URL; ens migrate: the owner's)")
	root.PersistentFlags().StringVar(&a.cfg.VarDir, "var-dir", a.cfg.VarDir, "directory for local state: private database, letters, outbox, secrets (ENS_VAR_DIR)")
	root.AddCommand(a.migrateCommand(), a.dbCommand(), a.registryCommand(), a.fixturesCommand(), a.waveCommand(),
		a.workerCommand(), a.demoCommand(), a.bouncesCommand(), a.mailsinkCommand(),
		a.serveCommand(), a.optoutCommand(), a.accountCommand(), a.archiveCommand(), a.auditCommand(), a.reportCommand(), a.opsCommand(), a.lettersCommand(), a.reconcileCommand(), a.enrolCommand(), a.codeCommand(), a.configCommand(), a.changesCommand())
	return root
}

func (a *app) setup() error {
	if a.cfgErr != nil {
		return usageError(fmt.Errorf("configuration refused (ens config shows it; docs/configuration.md documents it):\n%w", a.cfgErr))
	}
	var h slog.Handler
	switch a.cfg.LogFormat {
	case "text":
		h = slog.NewTextHandler(a.stderr, nil)
	case "json":
		h = slog.NewJSONHandler(a.stderr, nil)
	default:
		return usageError(fmt.Errorf("--log-format must be text or json, not %q", a.cfg.LogFormat))
	}
	a.log = slog.New(h)
	a.auditKey = a.cfg.AuditKey
	return nil
}

// store is pool as the capabilities take it: with the app's clock and audit
// key.
func (a *app) store(pool *pgxpool.Pool) *provisioning.Store {
	return &provisioning.Store{Pool: pool, Clock: a.clock, AuditKey: a.auditKey}
}

// warnUnkeyed says once, at the start of a long-running command, that the
// audit chain is not keyed.
func (a *app) warnUnkeyed() {
	if a.auditKey == nil {
		a.log.Warn("ENS_AUDIT_KEY is not set: the audit log is chained without a key, and whoever owns the tables could rewrite it unseen")
	}
}

// errNoDatabase is the answer to a command run without a database: the
// private cluster is for the demo and the tests, never a silent default.
var errNoDatabase = errors.New("DATABASE_URL is not set: point it (or --database-url) at the application role `ens migrate` created, " +
	"e.g. postgres://ens_app@db.internal/ens — or run `ens demo` for a throwaway private database")

// queue connects as db does, with a client that only inserts jobs (for
// commands that queue work for the workers).
func (a *app) queue(ctx context.Context) (*pgxpool.Pool, *river.Client[pgx.Tx], error) {
	pool, err := a.db(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	client, err := jobs.NewInsertClient(pool)
	if err != nil {
		return nil, nil, err
	}
	return pool, client, nil
}

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
	if a.cfg.DatabaseURL == "" {
		return nil, usageError(errNoDatabase)
	}
	pool, err := provisioning.OpenPool(ctx, a.cfg.DatabaseURL, maxConns)
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
