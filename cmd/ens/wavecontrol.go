package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

// waveControlCommands are the operator's hands on a running wave: pause,
// resume, cancel and retry, each audited with ENS_OPERATOR.
func (a *app) waveControlCommands() []*cobra.Command {
	control := func(use, short string, do func(ctx context.Context, pool *pgxpool.Pool, name string) (string, error)) *cobra.Command {
		return &cobra.Command{Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				pool, err := a.db(cmd.Context(), 2)
				if err != nil {
					return err
				}
				msg, err := do(cmd.Context(), pool, args[0])
				if err != nil {
					return usageErrorIf(err)
				}
				fmt.Fprintln(a.stdout, msg)
				return nil
			}}
	}
	return []*cobra.Command{
		control("pause", "Stop a wave's dispatch: no notice leaves until it is resumed (sent ones keep their window)",
			func(ctx context.Context, pool *pgxpool.Pool, name string) (string, error) {
				return "wave " + name + " paused", wave.Pause(ctx, a.store(pool), name, a.cfg.Operator)
			}),
		control("resume", "Let a paused wave's dispatch go on",
			func(ctx context.Context, pool *pgxpool.Pool, name string) (string, error) {
				return "wave " + name + " resumed", wave.Resume(ctx, a.store(pool), name, a.cfg.Operator)
			}),
		control("cancel", "Cancel what a wave has not sent: its pending accounts are cancelled; notified ones keep their window",
			func(ctx context.Context, pool *pgxpool.Pool, name string) (string, error) {
				n, err := wave.Cancel(ctx, a.store(pool), name, a.cfg.Operator)
				return fmt.Sprintf("wave %s cancelled: %d account(s) not yet notified cancelled", name, n), err
			}),
		control("retry", "Queue again the chunks of a wave that failed for good, for its accounts still pending",
			func(ctx context.Context, pool *pgxpool.Pool, name string) (string, error) {
				client, err := jobs.NewInsertClient(pool)
				if err != nil {
					return "", err
				}
				n, err := jobs.RetryWave(ctx, a.store(pool), client, name, a.cfg.Operator)
				return fmt.Sprintf("wave %s: %d pending account(s) queued again", name, n), err
			}),
	}
}

// usageErrorIf makes a state or not-found error a usage error (exit 2).
func usageErrorIf(err error) error {
	if errors.Is(err, provisioning.ErrState) || errors.Is(err, provisioning.ErrNotFound) {
		return usageError(err)
	}
	return err
}
