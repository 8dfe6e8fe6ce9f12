package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/fixtures/pgserver"
	"github.com/ens-sante/ens/provisioning"
)

func (a *app) migrateCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations (River's and ens's); idempotent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.db(cmd.Context(), 2, false)
			if err != nil {
				return err
			}
			res, err := provisioning.Migrate(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "River schema at version %d; applied %d ens migration(s) %v\n", res.RiverVersion, len(res.Applied), res.Applied)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) dbCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Manage the private PostgreSQL cluster used when DATABASE_URL is unset"}
	cmd.AddCommand(&cobra.Command{
		Use:   "url",
		Short: "Start the private cluster if needed and print its URL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := pgserver.Start(cmd.Context(), filepath.Join(a.varDir, "pg"))
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
			srv, err := pgserver.Start(cmd.Context(), filepath.Join(a.varDir, "pg"))
			if err != nil {
				return err
			}
			return srv.Stop()
		},
	})
	return cmd
}
