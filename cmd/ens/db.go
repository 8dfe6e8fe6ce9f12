package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/fixtures/pgserver"
	"github.com/ens-sante/ens/provisioning"
)

func (a *app) migrateCommand() *cobra.Command {
	var asJSON bool
	var role, passwordFile string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "As the owner role: apply the migrations (River's and ens's) and create the application role every other command runs as; idempotent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var password string
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageError(fmt.Errorf("reading --app-password-file: %w", err))
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			pool, err := a.ownerDB(cmd.Context(), 2)
			if err != nil {
				return err
			}
			res, err := provisioning.Migrate(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if err := provisioning.GrantApp(cmd.Context(), pool, role, password); err != nil {
				return err
			}
			res.AppRole = role
			if asJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "River schema at version %d; applied %d ens migration(s) %v; application role %s granted\n",
				res.RiverVersion, len(res.Applied), res.Applied, role)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&role, "app-role", a.cfg.AppRole, "the application role to create and grant (ENS_APP_ROLE; (no DDL; the audit log append-only)")
	cmd.Flags().StringVar(&passwordFile, "app-password-file", "", "set the application role's password from this file (otherwise manage it yourself: certificates, ALTER ROLE)")
	return cmd
}

func (a *app) dbCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Manage the demo's private PostgreSQL cluster (var/pg; never for production)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "url",
		Short: "Start the private cluster if needed and print its URL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := pgserver.Start(cmd.Context(), filepath.Join(a.cfg.VarDir, "pg"), pgserver.Options{Durable: true})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, srv.URL())
			return nil
		},
	}, &cobra.Command{
		Use:   "stop",
		Short: "Stop the private cluster (its data stays under var/pg)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := pgserver.Start(cmd.Context(), filepath.Join(a.cfg.VarDir, "pg"), pgserver.Options{Durable: true})
			if err != nil {
				return err
			}
			return srv.Stop()
		},
	})
	return cmd
}
