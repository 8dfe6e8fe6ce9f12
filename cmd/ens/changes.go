package main

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/provisioning/feed"
)

func (a *app) changesCommand() *cobra.Command {
	var after int64
	var limit int
	cmd := &cobra.Command{
		Use:   "changes --after SEQ [--limit N]",
		Short: "Print the account changes numbered after SEQ, in order, one JSON object a line (the platform's feed; nothing after the last)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < 0 || limit < 0 || limit > feed.MaxLimit {
				return usageError(errors.New("--after must be a sequence (0 for the start) and --limit at most 10000"))
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			changes, err := feed.After(cmd.Context(), pool, after, limit)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			for _, c := range changes {
				if err := enc.Encode(c); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&after, "after", 0, "the last sequence already read (0: from the start)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many changes")
	return cmd
}
