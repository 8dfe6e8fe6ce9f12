package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/reconcile"
	"github.com/ens-sante/ens/provisioning/report"
	"github.com/ens-sante/ens/provisioning/wave"
)

func (a *app) reportCommand() *cobra.Command {
	var format, out string
	cmd := &cobra.Command{
		Use:   "report [WAVE]",
		Short: "A wave's report (text, json, csv or pdf); with no wave, the overview of all waves",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(report.Formats, format) {
				return usageError(fmt.Errorf("--format must be one of %v", report.Formats))
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			w := a.stdout
			if out != "" {
				f, err := os.OpenFile(out+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640) //nolint:gosec // counts, no personal data: the auditors' group reads it
				if err != nil {
					return fmt.Errorf("creating report file: %w", err)
				}
				defer os.Remove(f.Name())
				defer f.Close()
				w = f
			}
			if len(args) == 0 {
				err = overview(cmd, w, pool, format, a.statusOptions())
			} else {
				var r *wave.Report
				if r, err = reconcile.WaveReport(cmd.Context(), pool, args[0], a.statusOptions()); err == nil {
					err = report.Write(w, r, format)
				}
			}
			if err != nil || out == "" {
				return err
			}
			if err := w.(*os.File).Close(); err != nil {
				return err
			}
			if err := os.Rename(out+".tmp", out); err != nil {
				return err
			}
			abs, _ := filepath.Abs(out)
			fmt.Fprintf(a.stdout, "report written to %s\n", abs)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, json, csv or pdf")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func overview(cmd *cobra.Command, w io.Writer, pool provisioning.DBTX, format string, opts wave.StatusOptions) error {
	waves, err := provisioning.ListWaves(cmd.Context(), pool)
	if err != nil {
		return err
	}
	var reports []*wave.Report
	for _, wv := range waves {
		r, err := reconcile.WaveReport(cmd.Context(), pool, wv.Name, opts)
		if err != nil {
			return err
		}
		reports = append(reports, r)
	}
	switch format {
	case "json":
		return writeJSON(w, reports)
	case "text":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WAVE\tWINDOW\tCREATED\tNOTIFIED\tOPPOSED\tACTIVE\tCANCELLED\tOPPOSITION RATE")
		for _, r := range reports {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.2f %%\n", r.Wave.Name, r.Wave.Window, r.Wave.Created,
				r.Accounts[provisioning.StateNotified], r.Accounts[provisioning.StateOpposed], r.Accounts[provisioning.StateActive],
				r.Accounts[provisioning.StateCancelled], 100*r.Oppositions.Rate)
		}
		return tw.Flush()
	}
	for _, r := range reports { // csv and pdf: one after the other
		if err := report.Write(w, r, format); err != nil {
			return err
		}
	}
	return nil
}
