package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
)

func (a *app) optoutService(ctx context.Context, conns int32) (*optout.Service, error) {
	key, err := optout.LoadKey()
	if err != nil {
		return nil, err
	}
	pool, err := a.db(ctx, conns, true)
	if err != nil {
		return nil, err
	}
	return &optout.Service{Pool: pool, Key: key, Limiter: optout.NewLimiter(), Clock: a.clock, Log: a.log}, nil
}

func (a *app) serveCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the public opposition form and the call centre's JSON API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.optoutService(cmd.Context(), 20)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			return a.serve(cmd.Context(), ln, optout.NewHandler(svc))
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr("ENS_ADDR", "127.0.0.1:8080"), "listen address")
	return cmd
}

// serve runs an HTTP server until ctx ends, then shuts it down gracefully.
func (a *app) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	a.log.Info("serving", "addr", ln.Addr().String())
	fmt.Fprintf(a.stdout, "listening on http://%s/\n", ln.Addr())
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
	var birth, op string
	var undo, asJSON bool
	cmd := &cobra.Command{
		Use:   "optout CODE",
		Short: "Record an opposition received by post or phone (audited with the operator's name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if op == "" {
				return usageError(errors.New("--operator is required: oppositions handled by agents are audited by name"))
			}
			svc, err := a.optoutService(cmd.Context(), 2)
			if err != nil {
				return err
			}
			req := optout.Request{Code: args[0], BirthDate: birth, Client: "agent:" + op, Channel: optout.ChannelAgent, Actor: op}
			if undo {
				rec, err := svc.Undo(cmd.Context(), req)
				if err != nil {
					return publicError(err)
				}
				fmt.Fprintf(a.stdout, "opposition %s withdrawn\n", rec.Reference)
				return nil
			}
			res, err := svc.Oppose(cmd.Context(), req)
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
			fmt.Fprintf(a.stdout, "opposition recorded for %s: receipt %s\n", res.Receipt.FirstMasked, res.Receipt.Reference)
			return nil
		},
	}
	cmd.Flags().StringVar(&birth, "birth-date", "", "birth date of the account holder (YYYY-MM-DD)")
	cmd.Flags().StringVar(&op, "operator", "", "name of the agent handling the request")
	cmd.Flags().BoolVar(&undo, "undo", false, "withdraw the opposition instead (the person changed their mind)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the receipt as JSON")
	return cmd
}

// publicError words an opposition failure for an operator; never the code.
func publicError(err error) error {
	switch {
	case errors.Is(err, optout.ErrMistyped):
		return usageError(errors.New("the code has a typo (check symbol does not match)"))
	case errors.Is(err, optout.ErrMalformed), errors.Is(err, optout.ErrBirthDate):
		return usageError(err)
	case errors.Is(err, provisioning.ErrNoMatch):
		return usageError(errors.New("no account matches this code and birth date"))
	case errors.Is(err, provisioning.ErrWindowClosed):
		return usageError(errors.New("the opposition window is closed for this account"))
	}
	return err
}
