package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/jobs/ops"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/window"
)

func (a *app) optoutService(ctx context.Context, conns int32) (*optout.Service, error) {
	pool, err := a.db(ctx, conns)
	if err != nil {
		return nil, err
	}
	key, err := a.cfg.codeKey()
	if err != nil {
		return nil, usageError(err)
	}
	return &optout.Service{Pool: pool, Key: key, Limiter: optout.NewLimiter(pool), Clock: a.clock, AuditKey: a.auditKey, AuditPreviousKeys: a.cfg.AuditPreviousKeys, Log: a.log,
		AgentDailyCap:  a.cfg.AgentDailyCap,
		TrustedProxies: a.cfg.TrustedProxies,
		ProofOfWork:    optout.NewProofOfWork(key)}, nil
}

func (a *app) serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the public opposition form and the call centre's JSON API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.warnUnkeyed()
			addr, opsAddr := a.cfg.Addr, a.cfg.OpsAddr
			svc, err := a.optoutService(cmd.Context(), int32(a.cfg.DBConns)) //nolint:gosec // ENS_DB_CONNS is at most 1,000
			if err != nil {
				return err
			}
			if addr == "" && opsAddr == "" {
				return usageError(errors.New("--addr and --ops-addr are both empty: nothing to serve"))
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			// An empty --addr serves the ops area alone: run it as a process
			// of its own, so that sign-ins (bcrypt) never take the public
			// form's cores.
			if addr != "" {
				// The public site's traffic is measured on the ops area's /metrics.
				if opsAddr != "" {
					svc.Metrics = optout.NewMetrics()
				}
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("listening on %s: %w", addr, err)
				}
				fmt.Fprintf(a.stdout, "listening on http://%s/\n", ln.Addr())
				g.Go(func() error { return a.serve(ctx, ln, optout.NewHandler(svc)) })
			}
			g.Go(func() error { a.expireLimits(ctx, svc.Limiter); return nil })
			if opsAddr != "" {
				opsLn, opsH, err := a.opsArea(ctx, svc, opsAddr)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "listening on http://%s/\n", opsLn.Addr())
				g.Go(func() error { return a.serve(ctx, opsLn, opsH) })
			}
			return g.Wait()
		},
	}
	cmd.Flags().StringVar(&a.cfg.Addr, "addr", a.cfg.Addr, "listen address of the public site (ENS_ADDR; empty: the ops area alone)")
	cmd.Flags().IntVar(&a.cfg.DBConns, "db-conns", a.cfg.DBConns,
		"database connections of the public site (ENS_DB_CONNS; most requests take one round trip: a few per CPU of the database do)")
	cmd.Flags().StringVar(&a.cfg.OpsAddr, "ops-addr", a.cfg.OpsAddr, "listen address of /ops/ and /metrics (ENS_OPS_ADDR; internal network only; empty: off)")
	return cmd
}

// expireLimits deletes forgotten rate-limit keys every minute until ctx
// ends (every serve process does; the work is shared, not repeated).
func (a *app) expireLimits(ctx context.Context, l *optout.Limiter) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := l.Expire(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("expiring rate limits", "error", err)
			} else if n > 0 {
				a.log.Debug("rate-limit keys expired", "keys", n)
			}
		}
	}
}

// opsArea prepares the operators' and auditors' area and its listener.
func (a *app) opsArea(ctx context.Context, svc *optout.Service, addr string) (net.Listener, http.Handler, error) {
	var collectors []prometheus.Collector
	if svc.Metrics != nil {
		collectors = append(collectors, svc.Metrics)
	}
	users, err := ops.LoadUsers(a.cfg.OpsUsersFile, a.cfg.OpsUsers)
	if err != nil {
		a.log.Warn("ops area has no users: every /ops/ request will be refused", "error", err)
		users = map[string]ops.User{}
	}
	metricsPool, err := a.db(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	client, err := jobs.NewInsertClient(svc.Pool)
	if err != nil {
		return nil, nil, err
	}
	h, err := ops.NewHandler(ops.Options{Pool: svc.Pool, Client: client, Users: users, Log: a.log, Service: svc,
		MetricsPool: metricsPool, MetricsAllow: a.cfg.MetricsAllow, PostingSLA: a.cfg.PostingSLA, Collectors: collectors})
	if err != nil {
		return nil, nil, err
	}
	if err := h.Start(ctx); err != nil {
		return nil, nil, fmt.Errorf("starting River UI: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	fmt.Fprintf(a.stdout, "operations area: http://%s/ops/ (River UI at /ops/river/, agents' API at /ops/api/v1/oppositions, metrics at /metrics)\n", ln.Addr())
	return ln, h, nil
}

func (a *app) opsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "ops", Short: "The operators' and auditors' web area"}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Read a password on stdin and print its bcrypt hash, for ENS_OPS_USERS (name:role:hash)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pass, err := io.ReadAll(io.LimitReader(a.stdin, 1024))
			if err != nil {
				return err
			}
			h, err := bcrypt.GenerateFromPassword(bytes.TrimRight(pass, "\r\n"), bcrypt.DefaultCost)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, string(h))
			return nil
		},
	})
	return cmd
}

// serve runs an HTTP server until ctx ends, then shuts it down gracefully.
// It writes nothing to stdout: the command says where it listens before it
// starts the servers, from one goroutine.
func (a *app) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	a.log.Info("serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *app) optoutCommand() *cobra.Command {
	var birth, op, nir, checkedBy, receivedOn string
	var undo, asJSON, codeStdin bool
	cmd := &cobra.Command{
		Use:   "optout [CODE]",
		Short: "Record an opposition received by post or phone: with the code (on stdin, or as the argument), or --nir after an identity check (audited with both names)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if op == "" {
				return usageError(errors.New("--operator is required: oppositions handled by agents are audited by name"))
			}
			if len(args) == 1 && (nir != "" || codeStdin) {
				return usageError(errors.New("give the code, or --nir with --identity-checked-by when the person has lost it"))
			}
			var code string
			switch nir {
			case "":
				c, err := a.secretInput(args, "opposition code")
				if err != nil {
					return err
				}
				code = c
			case "-":
				n, err := a.secretInput(nil, "NIR")
				if err != nil {
					return err
				}
				nir = n
			default:
				a.secretOnCommandLine("NIR")
			}
			var postmark *time.Time
			if receivedOn != "" {
				d, err := time.Parse(time.DateOnly, receivedOn)
				if err != nil {
					return usageError(errors.New("--received-on: expected the postmark's date, YYYY-MM-DD"))
				}
				postmark = &d
			}
			svc, err := a.optoutService(cmd.Context(), 2)
			if err != nil {
				return err
			}
			var res *window.OpposeResult
			switch {
			case nir != "" && undo:
				var rec *window.Receipt
				rec, err = a.undoWithoutCode(cmd.Context(), svc, nir, birth, op, checkedBy)
				if err == nil {
					fmt.Fprintf(a.stdout, "opposition %s withdrawn\n", rec.Reference)
					return nil
				}
			case nir != "":
				res, err = a.opposeWithoutCode(cmd.Context(), svc, nir, birth, op, checkedBy, postmark)
			case undo:
				var rec *window.Receipt
				rec, err = svc.Undo(cmd.Context(), optout.Request{Code: code, BirthDate: birth, Client: "agent:" + op, Channel: optout.ChannelAgent, Actor: op})
				if err == nil {
					fmt.Fprintf(a.stdout, "opposition %s withdrawn\n", rec.Reference)
					return nil
				}
			default:
				res, err = svc.Oppose(cmd.Context(), optout.Request{Code: code, BirthDate: birth, Client: "agent:" + op,
					Channel: optout.ChannelAgent, Actor: op, PostmarkedOn: postmark})
			}
			if err != nil {
				return publicError(err)
			}
			if asJSON {
				return a.printJSON(res)
			}
			if res.AlreadyOpposed {
				fmt.Fprintf(a.stdout, "already opposed on %s (receipt %s); nothing changed\n", res.Receipt.At.In(provisioning.Paris).Format(time.DateTime), res.Receipt.Reference)
				return nil
			}
			switch {
			case res.Late:
				fmt.Fprintf(a.stdout, "opposition postmarked in time, read after the activation: %s's account is closed as opposed late, "+
					"its data purged within three months; receipt %s\n", res.Receipt.FirstMasked, res.Receipt.Reference)
			case res.BeforeAnyWave:
				fmt.Fprintf(a.stdout, "opposition recorded for %s before any wave: no wave will select them; receipt %s\n",
					res.Receipt.FirstMasked, res.Receipt.Reference)
			default:
				fmt.Fprintf(a.stdout, "opposition recorded for %s: receipt %s\n", res.Receipt.FirstMasked, res.Receipt.Reference)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&birth, "birth-date", "", "birth date of the account holder (YYYY-MM-DD)")
	cmd.Flags().StringVar(&op, "operator", "", "name of the agent handling the request")
	cmd.Flags().StringVar(&nir, "nir", "", "the holder's NIR, when the person has lost the code (needs --identity-checked-by; '-': read it on stdin)")
	cmd.Flags().BoolVar(&codeStdin, "code-stdin", false, "read the code on stdin (the default without a CODE argument): it stays out of ps and the shell history")
	cmd.Flags().StringVar(&checkedBy, "identity-checked-by", "", "the agent who checked the person's identity (audited)")
	cmd.Flags().StringVar(&receivedOn, "received-on", "", "a mailed opposition's postmark date (YYYY-MM-DD): it counts instead of today")
	cmd.Flags().BoolVar(&undo, "undo", false, "withdraw the opposition instead (the person changed their mind)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the receipt as JSON")
	return cmd
}

// agentOpposition reads what an act without the code needs: the NIR, the
// birth date, and the agent who checked the person's identity.
func agentOpposition(nirArg, birthArg, op, checkedBy string, postmark *time.Time) (window.AgentOpposition, error) {
	if checkedBy == "" {
		return window.AgentOpposition{}, usageError(errors.New("--identity-checked-by is required: an opposition without the code needs an agent's identity check"))
	}
	nir, err := parseNIRArg(nirArg)
	if err != nil {
		return window.AgentOpposition{}, err
	}
	birth, err := optout.ParseBirthDate(birthArg)
	if err != nil {
		return window.AgentOpposition{}, usageError(err)
	}
	return window.AgentOpposition{NIR: nir, BirthDate: birth, Operator: op, IdentityCheckedBy: checkedBy, PostmarkedOn: postmark}, nil
}

// opposeWithoutCode records an opposition for the person a NIR and birth
// date name, once an agent has checked their identity.
func (a *app) opposeWithoutCode(ctx context.Context, svc *optout.Service, nirArg, birthArg, op, checkedBy string, postmark *time.Time) (*window.OpposeResult, error) {
	o, err := agentOpposition(nirArg, birthArg, op, checkedBy, postmark)
	if err != nil {
		return nil, err
	}
	o.DailyCap = a.cfg.AgentDailyCap
	return window.OpposeByAgent(ctx, svc.Store().At(a.clock), o)
}

// undoWithoutCode withdraws the opposition of the person a NIR and birth
// date name, once an agent has checked their identity.
func (a *app) undoWithoutCode(ctx context.Context, svc *optout.Service, nirArg, birthArg, op, checkedBy string) (*window.Receipt, error) {
	o, err := agentOpposition(nirArg, birthArg, op, checkedBy, nil)
	if err != nil {
		return nil, err
	}
	return window.UndoByAgent(ctx, svc.Store().At(a.clock), o)
}

// publicError words an opposition failure for an operator; never the code.
func publicError(err error) error {
	switch {
	case errors.Is(err, optout.ErrMistyped):
		return usageError(errors.New("the code has a typo (check symbol does not match)"))
	case errors.Is(err, optout.ErrMalformed), errors.Is(err, optout.ErrBirthDate):
		return usageError(err)
	case errors.Is(err, window.ErrNoMatch):
		return usageError(errors.New("no account matches this code and birth date"))
	case errors.Is(err, window.ErrWindowClosed):
		return usageError(errors.New("the opposition window is closed for this account"))
	case errors.As(err, new(*window.AgentCapError)), errors.Is(err, window.ErrActivatedBeforeArrival), errors.Is(err, window.ErrPostmarkBeforeNotice), errors.Is(err, provisioning.ErrState):
		return usageError(err)
	}
	return err
}
