package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/pgserver"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

type demoOptions struct {
	count  int64
	window string
}

func (a *app) demoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole wave end to end on a private database and a local mail server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDemo(cmd.Context(), o)
		},
	}
	cmd.Flags().Int64Var(&o.count, "count", 2000, "people in the synthetic registry")
	cmd.Flags().StringVar(&o.window, "window", "20s", "opposition window of the demo wave (a rehearsal)")
	return cmd
}

func (a *app) step(format string, args ...any) {
	fmt.Fprintf(a.stdout, "\n==> "+format+"\n", args...)
}

func (a *app) runDemo(ctx context.Context, o demoOptions) error {
	demoDir := filepath.Join(a.cfg.VarDir, "demo")
	if err := os.MkdirAll(demoDir, 0o700); err != nil {
		return err
	}
	if err := a.demoKey(); err != nil {
		return err
	}
	if a.cfg.DatabaseURL == "" {
		a.step("Starting a private PostgreSQL cluster in %s", filepath.Join(a.cfg.VarDir, "pg"))
		srv, err := pgserver.Start(ctx, filepath.Join(a.cfg.VarDir, "pg"), pgserver.Options{Durable: true})
		if err != nil {
			return err
		}
		if err := recreateDatabase(ctx, srv.URL(), "ens_demo"); err != nil {
			return err
		}
		a.cfg.DatabaseURL = srv.DatabaseURL("ens_demo")
		fmt.Fprintf(a.stdout, "database: %s (fresh for this demo)\n", a.cfg.DatabaseURL)
	}
	outbox := filepath.Join(a.cfg.VarDir, "outbox")
	// The demo's settings reach its sub-commands, run in-process, through
	// their environment.
	if a.cfg.SMTPURL == "" {
		os.RemoveAll(outbox)
		sink, err := mailsink.Start(mailsink.Options{Dir: outbox})
		if err != nil {
			return err
		}
		defer sink.Close()
		if err := os.Setenv("SMTP_URL", sink.URL()); err != nil {
			return err
		}
		a.step("Started a local SMTP server on %s; every email lands in %s", sink.Addr(), outbox)
	}
	if a.cfg.LettersDir == "" {
		os.RemoveAll(filepath.Join(a.cfg.VarDir, "letters"))
	}
	// Migrated as the owner, then run as the application role, as in
	// production.
	a.step("ens migrate   (as the owner: River's and ens's migrations, and the application role %s)", provisioning.DefaultAppRole)
	if err := a.sub(ctx, "migrate"); err != nil {
		return err
	}
	a.cfg.DatabaseURL = pgserver.WithUser(a.cfg.DatabaseURL, provisioning.DefaultAppRole)
	pool, err := a.db(ctx, 8)
	if err != nil {
		return err
	}

	seed := uint64(time.Now().UnixNano())
	regPath := filepath.Join(demoDir, "registry.csv")
	f, err := os.OpenFile(regPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := fixtures.WriteRegistry(f, fixtures.RegistryOptions{Count: o.count, Seed: seed}); err != nil {
		f.Close()
		return err
	}
	f.Close()
	a.step("Generated a synthetic registry of %d people: %s", o.count, regPath)

	a.step("ens registry import %s", regPath)
	if err := a.sub(ctx, "registry", "import", regPath); err != nil {
		return err
	}
	a.step("ens registry import %s   (again: nothing changes)", regPath)
	if err := a.sub(ctx, "registry", "import", regPath, "--json"); err != nil {
		return err
	}

	wave := "demo-" + time.Now().In(provisioning.Paris).Format("20060102-150405")
	a.step("ens wave launch %s --window %s   (a rehearsal window, so the demo can show it closing)", wave, o.window)
	if err := a.sub(ctx, "wave", "launch", wave, "--window", o.window); err != nil {
		return err
	}
	a.step("ens worker --until-idle   (emails over SMTP, letters as PDF)")
	// A rehearsal: letters count from their posting day, and the windows
	// that close are activated without the grace a real campaign keeps.
	// Its letters print a rehearsal's addresses unless real ones are set.
	if err := errors.Join(os.Setenv("ENS_POST_DELAY", "0"), os.Setenv("ENS_DELIVERY_DELAY", "0s"), os.Setenv("ENS_DELIVERY_DELAY_OVERSEAS", "0s"), os.Setenv("ENS_DELIVERY_DELAY_ABROAD", "0s"),
		os.Setenv("ENS_ACTIVATION_GRACE", "0s"),
		setUnlessSet("ENS_REFUSAL_ADDRESS", fixtures.LetterInfo.RefusalAddress), setUnlessSet("ENS_DPO_CONTACT", fixtures.LetterInfo.DPOContact)); err != nil {
		return err
	}
	if err := a.sub(ctx, "worker", "--until-idle"); err != nil {
		return err
	}
	a.step("ens wave status %s", wave)
	if err := a.sub(ctx, "wave", "status", wave); err != nil {
		return err
	}
	emls, _ := filepath.Glob(filepath.Join(outbox, "*.eml"))
	pdfs, _ := filepath.Glob(filepath.Join(a.cfg.VarDir, "letters", "*", "*.pdf"))
	fmt.Fprintf(a.stdout, "\n%d emails landed in %s; %d letter PDFs (one per department) under %s\n",
		len(emls), outbox, len(pdfs), filepath.Join(a.cfg.VarDir, "letters"))

	a.step("ens letters batches --wave %s   (the printer's list: file, SHA-256, pages, state)", wave)
	if err := a.sub(ctx, "letters", "batches", "--wave", wave); err != nil {
		return err
	}
	acks, err := a.demoAcks(ctx, pool, wave, demoDir)
	if err != nil {
		return err
	}
	a.step("ens letters acks %s   (the printer posted every batch today: those letters are now sent)", acks)
	if err := a.sub(ctx, "letters", "acks", acks, "--operator", "imprimeur-demo"); err != nil {
		return err
	}
	if err := a.demoOppositions(ctx, pool, wave); err != nil {
		return err
	}
	a.step("Waiting for the %s window to end, then ens worker --until-idle closes it", o.window)
	var last time.Time
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(deadline), now()) FROM account a JOIN wave w ON w.id = a.wave_id WHERE w.name = $1`, wave).Scan(&last); err != nil {
		return err
	}
	select {
	case <-time.After(time.Until(last) + time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := a.sub(ctx, "worker", "--until-idle"); err != nil {
		return err
	}
	a.step("ens report %s", wave)
	if err := a.sub(ctx, "report", wave); err != nil {
		return err
	}
	pdf := filepath.Join(demoDir, wave+".pdf")
	if err := a.sub(ctx, "report", wave, "--format", "pdf", "-o", pdf); err != nil {
		return err
	}
	a.step("ens reconcile %s   (every person accounted for: exit 4 and the accounts otherwise)", wave)
	if err := a.sub(ctx, "reconcile", wave); err != nil {
		return err
	}
	a.step("ens audit verify")
	if err := a.sub(ctx, "audit", "verify"); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nDone. Open %s for the auditors' report.\n"+
		"To browse: DATABASE_URL='%s' ENS_OPS_USERS=\"me:operator:$(echo -n secret | ./bin/ens ops hash)\" ENS_CODE_KEY_FILE=%s ENS_AUDIT_KEY_FILE=%s ./bin/ens serve\n"+
		"  then http://127.0.0.1:8080/ (public form), http://127.0.0.1:8081/ops/ (reports) and http://127.0.0.1:8081/ops/river/ (River UI; user me, password secret).\n"+
		"'./bin/ens db stop' stops the private database.\n", pdf, a.cfg.DatabaseURL, a.cfg.CodeKeyFile, a.cfg.AuditKeyFile)
	return nil
}

// demoAcks writes the printer's acknowledgements file for every batch of
// the wave, posted today.
func (a *app) demoAcks(ctx context.Context, pool *pgxpool.Pool, wave, dir string) (string, error) {
	bs, err := notice.ListLetterBatches(ctx, pool, notice.BatchFilter{Wave: wave}, a.clock.Now())
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("batch,posted_on,sha256\n")
	for _, x := range bs {
		fmt.Fprintf(&b, "%s,%s,%s\n", filepath.Base(x.File), a.clock.Now().In(provisioning.Paris).Format(time.DateOnly), x.SHA256)
	}
	path := filepath.Join(dir, wave+".acks.csv")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// demoOppositions opposes a few accounts through the real public API, as
// the call centre's tools would, and opposes then withdraws one more.
func (a *app) demoOppositions(ctx context.Context, pool *pgxpool.Pool, wave string) error {
	a.step("A few people oppose through the real API (POST /api/v1/oppositions on a local ens serve)")
	svc, err := a.optoutService(ctx, 4)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: optout.NewHandler(svc), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck
	defer srv.Close()
	rows, err := pool.Query(ctx, `SELECT a.id, p.birth_date::text FROM account a JOIN person p ON p.id = a.person_id
		JOIN wave w ON w.id = a.wave_id WHERE w.name = $1 AND a.state = 'notified' ORDER BY a.id LIMIT 6`, wave)
	if err != nil {
		return err
	}
	type who struct {
		id    int64
		birth string
	}
	var people []who
	for rows.Next() {
		var p who
		if err := rows.Scan(&p.id, &p.birth); err != nil {
			rows.Close()
			return err
		}
		people = append(people, p)
	}
	rows.Close()
	for i, p := range people {
		// The demo knows the key, so it can play the person who read the notice.
		code := svc.Key.Derive(p.id).String()
		birth := p.birth
		if i == len(people)-1 {
			birth = "1900-01-01" // a wrong birth date: the generic answer
		}
		body := fmt.Sprintf(`{"code":%q,"birth_date":%q}`, code, birth)
		resp, err := http.Post("http://"+ln.Addr().String()+"/api/v1/oppositions", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(a.stdout, "  account %d: HTTP %d %s", p.id, resp.StatusCode, b)
	}
	return nil
}

// sub runs another ens command in-process, sharing this one's settings.
func (a *app) sub(ctx context.Context, args ...string) error {
	full := append([]string{"--database-url", a.cfg.DatabaseURL, "--var-dir", a.cfg.VarDir, "--log-format", a.cfg.LogFormat}, args...)
	if code := Run(ctx, full, a.stdin, a.stdout, a.stderr); code != 0 {
		return fmt.Errorf("ens %v exited with %d", args, code)
	}
	return nil
}

// demoKey creates a code key and an audit key for the demo when none is
// configured.
func (a *app) demoKey() error {
	if a.cfg.CodeKey == nil {
		path, err := a.demoSecret("ENS_CODE_KEY", "code.key", "a code key")
		if err != nil {
			return err
		}
		a.cfg.CodeKeyFile = path
		if err := a.cfg.setCodeKey("", path); err != nil {
			return err
		}
	}
	if a.cfg.AuditKey == nil {
		path, err := a.demoSecret("ENS_AUDIT_KEY", "audit.key", "an audit key (the audit chain's HMAC)")
		if err != nil {
			return err
		}
		a.cfg.AuditKeyFile = path
		if err := a.cfg.setAuditKey("", path); err != nil {
			return err
		}
		a.auditKey = a.cfg.AuditKey
	}
	return nil
}

// demoSecret creates a random 32-byte key under var/secrets for the demo,
// unless it is there already, points variable_FILE at it for the demo's
// sub-commands, and returns its path.
func (a *app) demoSecret(variable, file, what string) (string, error) {
	path := filepath.Join(a.cfg.VarDir, "secrets", file)
	if _, err := os.Stat(path); err != nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		b := make([]byte, 32)
		rand.Read(b) //nolint:errcheck
		if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("writing demo key %s: %w", path, err)
		}
		fmt.Fprintf(a.stdout, "created %s for the demo: %s (mode 0600)\n", what, path)
	}
	return path, os.Setenv(variable+"_FILE", path)
}

func recreateDatabase(ctx context.Context, adminURL, name string) error {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connecting to private cluster: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("resetting demo database: %w", err)
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("creating demo database: %w", err)
	}
	return nil
}

func setUnlessSet(name, value string) error {
	if os.Getenv(name) != "" {
		return nil
	}
	return os.Setenv(name, value)
}
