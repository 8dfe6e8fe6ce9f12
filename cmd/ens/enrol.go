package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning/wave"
)

func (a *app) enrolCommand() *cobra.Command {
	var enable, disable, asJSON, dryRun bool
	cmd := &cobra.Command{
		Use: "enrol",
		Short: "Continuous enrolment: create the accounts of everyone eligible not yet enrolled (newborns active with an information notice, " +
			"anybody else in the month's rolling wave enrol-YYYY-MM); --enable / --disable turn the daily run on or off (audited)",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if enable && disable {
				return usageError(errors.New("--enable or --disable, not both"))
			}
			pool, err := a.db(cmd.Context(), 4)
			if err != nil {
				return err
			}
			if dryRun {
				p, err := wave.DryRunEnrolment(cmd.Context(), pool, wave.PreviewOptions{Now: a.clock.Now(),
					PostagePerLetter: a.cfg.LetterPostage, EmailsPerSecond: a.cfg.EmailRate, LettersPerSecond: a.cfg.LetterRate})
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(p)
				}
				fmt.Fprintf(a.stdout, "the next enrolment runs would create %d accounts (%d a day at most: ENS_ENROL_DAILY_CAP), %d of newborns; nothing written\n",
					p.Accounts, a.cfg.EnrolDailyCap, p.Newborns)
				return nil
			}
			if a.cfg.Enrol && !disable {
				// ENS_ENROL=on means the same to every command: enrolment on.
				if _, err := wave.SetEnrolment(cmd.Context(), a.store(pool), true, "ENS_ENROL=on ("+a.cfg.Operator+")"); err != nil {
					return err
				}
			}
			if enable || disable {
				changed, err := wave.SetEnrolment(cmd.Context(), a.store(pool), enable, a.cfg.Operator)
				if err != nil {
					return err
				}
				state := map[bool]string{true: "on", false: "off"}[enable]
				if !changed {
					fmt.Fprintf(a.stdout, "continuous enrolment was already %s\n", state)
				} else {
					fmt.Fprintf(a.stdout, "continuous enrolment is %s (the workers' leader runs it daily and after each import)\n", state)
				}
				return nil
			}
			client, err := jobs.NewInsertClient(pool)
			if err != nil {
				return err
			}
			res, err := wave.Enrol(cmd.Context(), a.store(pool), jobs.Enqueuer(client), int64(a.cfg.EnrolDailyCap), wave.LaunchOptions{})
			if errors.Is(err, wave.ErrEnrolmentOff) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "wave %s: %d accounts created (%d newborns active at once, %d with a %s window); `ens worker` sends their notices\n",
				res.Wave.Name, res.Created, res.Active, res.Pending, res.Wave.Window)
			return nil
		},
	}
	cmd.Flags().BoolVar(&enable, "enable", false, "turn continuous enrolment on")
	cmd.Flags().BoolVar(&disable, "disable", false, "turn continuous enrolment off")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what the next runs would create, writing nothing")
	return cmd
}
