package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning/registry"
	"github.com/ens-sante/ens/provisioning/wave"
)

func (a *app) registryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Import the insured-person registry"}
	var asJSON bool
	var rejects string
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a registry CSV: rejected rows are kept, with their reason, in FILE.rejects.csv",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return fmt.Errorf("reading registry file: %w", err)
			}
			pool, err := a.db(cmd.Context(), 4)
			if err != nil {
				return err
			}
			prog := a.progress("registry import", -1)
			res, err := registry.Import(cmd.Context(), a.store(pool), args[0], registry.ImportOptions{
				Actor: a.cfg.Operator, RejectsPath: rejects, Progress: prog,
			})
			if errors.Is(err, registry.ErrHeader) {
				return usageError(fmt.Errorf("%w; nothing was imported", err))
			}
			if err != nil {
				return fmt.Errorf("importing %s: %w; nothing was imported, run it again once fixed", args[0], err)
			}
			a.log.Info("registry imported", "import_id", res.ImportID, "read", res.Read, "accepted", res.Accepted,
				"rejected", res.Rejected, "seconds", res.Duration.Seconds())
			if err := a.queueEnrolment(cmd.Context(), pool); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "%s: %d rows read, %d accepted (%d new, %d updated, %d unchanged), %d rejected\n",
				res.File, res.Read, res.Accepted, res.Inserted, res.Updated, res.Unchanged, res.Rejected)
			printCounts(a, "  rejected", res.Reasons)
			printCounts(a, "  warning", res.Warnings)
			for _, r := range res.Renamed {
				fmt.Fprintf(a.stdout, "  name changed (audited): line %d, %s\n", r.Line, r.NIRMasked)
			}
			for _, r := range res.Replaced {
				fmt.Fprintf(a.stdout, "  number replaced (same person and account, audited): line %d, now %s\n", r.Line, r.NIRMasked)
			}
			for _, r := range res.PossibleDuplicates {
				fmt.Fprintf(a.stdout, "  to review: line %d, %s has the names and birth date of someone under another number\n", r.Line, r.NIRMasked)
			}
			if res.Cancelled+res.Closed > 0 {
				fmt.Fprintf(a.stdout, "  deaths: %d account(s) cancelled, %d closed and archived\n", res.Cancelled, res.Closed)
			}
			if res.LettersWithdrawn > 0 {
				fmt.Fprintf(a.stdout, "  new addresses: %d letter(s) printed for the old one withdrawn before posting, to be printed again (ens letters batches: pages to pull)\n",
					res.LettersWithdrawn)
			}
			if res.RejectsFile != "" {
				fmt.Fprintf(a.stdout, "  rejected rows, to correct and re-import: %s\n", res.RejectsFile)
			}
			return nil
		},
	}
	imp.Flags().BoolVar(&asJSON, "json", false, "print the import summary as one JSON object")
	imp.Flags().StringVar(&rejects, "rejects", "", "where to write rejected rows (default FILE.rejects.csv)")
	cmd.AddCommand(imp)
	return cmd
}

func printCounts(a *app, label string, m map[string]int64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(a.stdout, "%s %-24s %d\n", label, k, m[k])
	}
}

func (a *app) fixturesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "fixtures", Short: "Generate synthetic data"}
	var opts fixtures.RegistryOptions
	var out string
	reg := &cobra.Command{
		Use:   "registry",
		Short: "Write a deterministic synthetic registry that looks like France",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Count < 0 {
				return usageError(errors.New("--count must not be negative"))
			}
			w := a.stdout
			if out != "" && out != "-" {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
				if err != nil {
					return fmt.Errorf("creating fixture file: %w", err)
				}
				defer f.Close()
				w = f
			}
			return fixtures.WriteRegistry(w, opts)
		},
	}
	reg.Flags().Int64Var(&opts.Count, "count", 1000, "number of rows")
	reg.Flags().Uint64Var(&opts.Seed, "seed", 1, "random seed: the same seed gives the same file")
	reg.Flags().Float64Var(&opts.RejectShare, "reject-share", 0.02, "share of rows made to be rejected (negative: none)")
	reg.Flags().StringVarP(&out, "output", "o", "", "output file (default stdout)")
	cmd.AddCommand(reg)
	return cmd
}

// queueEnrolment asks the workers for an enrolment run after an import,
// when continuous enrolment is on: the newly imported need accounts.
func (a *app) queueEnrolment(ctx context.Context, pool *pgxpool.Pool) error {
	on, err := wave.EnrolmentEnabled(ctx, pool)
	if err != nil || !on {
		return err
	}
	client, err := jobs.NewInsertClient(pool)
	if err != nil {
		return err
	}
	if _, err := client.Insert(ctx, jobs.EnrolArgs{}, nil); err != nil {
		return fmt.Errorf("queueing the enrolment of the newly imported: %w", err)
	}
	return nil
}
