package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/provisioning/reconcile"
)

func (a *app) reconcileCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reconcile WAVE",
		Short: "Prove every person of a wave is accounted for; exit 4 with the anomalies (account ids, never personal data)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			r, err := reconcile.Wave(cmd.Context(), pool, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				err = a.printJSON(r)
			} else {
				err = a.printReconciliation(r)
			}
			if err == nil && !r.Clean {
				return &exitError{code: exitAnomalies, err: fmt.Errorf("wave %s does not reconcile", r.Wave)}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func (a *app) printReconciliation(r *reconcile.Report) error {
	verdict := "CLEAN: every person accounted for"
	if !r.Clean {
		verdict = "ANOMALIES"
	}
	s := r.Selection
	fmt.Fprintf(a.stdout, "wave %s — %s\n  launch: %d selected = %d created + %d deceased + %d already enrolled\n",
		r.Wave, verdict, s.Selected, s.Created, s.ExcludedDeceased, s.ExcludedEnrolled)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHECK\tCOUNT\tEXAMPLES (account ids)\tWHAT IT PROVES")
	for _, c := range r.Checks {
		ex := "-"
		if len(c.Examples) > 0 {
			ex = fmt.Sprint(c.Examples)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", c.Name, c.Count, ex, c.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for k, v := range r.InProgress {
		if v > 0 {
			fmt.Fprintf(a.stdout, "  in progress (not anomalies): %s %d\n", k, v)
		}
	}
	return nil
}
