package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

type waveLaunchOptions struct {
	departments string
	bornFrom    int
	bornTo      int
	limit       int64
	window      string
	asJSON      bool
	dryRun      bool
	perDay      int64
	startAt     string
}

func (o *waveLaunchOptions) spec(name, actor string) (provisioning.WaveSpec, error) {
	spec := provisioning.WaveSpec{Name: name, BornFrom: o.bornFrom, BornTo: o.bornTo, Limit: o.limit, Actor: actor}
	w, err := provisioning.ParseWindow(o.window)
	if err != nil {
		return spec, err
	}
	spec.Window = w
	if o.limit < 0 {
		return spec, errors.New("--limit must not be negative")
	}
	if o.bornFrom != 0 && o.bornTo != 0 && o.bornFrom > o.bornTo {
		return spec, errors.New("--born-from is after --born-to")
	}
	if o.perDay < 0 {
		return spec, errors.New("--per-day must be positive")
	}
	spec.PerDay = o.perDay
	if o.startAt != "" {
		t, err := parseStartAt(o.startAt)
		if err != nil {
			return spec, err
		}
		spec.StartAt = &t
	}
	for _, d := range strings.Split(o.departments, ",") {
		d = strings.ToUpper(strings.TrimSpace(d))
		if d == "" {
			continue
		}
		if !validDepartment(d) {
			return spec, fmt.Errorf("department %q: expected 01–95, 2A, 2B, 971–978, 984–989 or 99", d)
		}
		spec.Departments = append(spec.Departments, d)
	}
	return spec, nil
}

// parseStartAt reads --start-at: a day (its midnight) or a day and time,
// Paris time.
func parseStartAt(s string) (time.Time, error) {
	for _, layout := range []string{time.DateOnly, "2006-01-02T15:04", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, provisioning.Paris); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("--start-at: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (Paris time)")
}

func validDepartment(d string) bool {
	switch {
	case d == "2A" || d == "2B" || d == "99":
		return true
	case len(d) == 2 && d >= "01" && d <= "95" && d != "20":
		return true
	case len(d) == 3 && ((d >= "971" && d <= "978") || (d >= "984" && d <= "989")):
		return true // overseas: the three digits DepartmentOf gives a 97x or 98x postcode
	}
	return false
}

func (a *app) waveCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "wave", Short: "Launch and follow waves"}
	var lo waveLaunchOptions
	launch := &cobra.Command{
		Use:   "launch NAME",
		Short: "Create accounts for eligible people and queue their notices; relaunching resumes, never duplicates",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := lo.spec(args[0], a.cfg.Operator)
			if err != nil {
				return usageError(err)
			}
			pool, err := a.db(cmd.Context(), 4)
			if err != nil {
				return err
			}
			if lo.dryRun {
				return a.previewWave(cmd.Context(), pool, spec, lo.asJSON)
			}
			client, err := jobs.NewInsertClient(pool)
			if err != nil {
				return err
			}
			total := spec.Limit // the bar's total; unknown (-1) without a limit
			if total == 0 {
				total = -1
			}
			res, err := wave.Launch(cmd.Context(), a.store(pool), spec, jobs.Enqueuer(client), wave.LaunchOptions{
				Progress: a.progress("wave launch", total),
			})
			if errors.Is(err, wave.ErrWaveMismatch) {
				return usageError(err)
			}
			if err != nil {
				return fmt.Errorf("%w (run the same command again to resume)", err)
			}
			a.log.Info("wave launched", "wave", spec.Name, "created", res.Created, "jobs", res.Jobs, "seconds", res.Duration.Seconds())
			if lo.asJSON {
				return a.printJSON(res)
			}
			verb := "launched"
			if res.Resumed {
				verb = "resumed"
			}
			fmt.Fprintf(a.stdout, "wave %s %s: %d accounts created (%d pending notice, %d newborns active at once), %d notice jobs queued, window %s\n",
				spec.Name, verb, res.Created, res.Pending, res.Active, res.Jobs, res.Wave.Window)
			if w := res.Wave; w.PerDay != nil || w.StartAt != nil {
				fmt.Fprintf(a.stdout, "  dispatch: %s\n", dispatchSchedule(w))
			}
			if res.Wave.Window.Rehearsal() {
				fmt.Fprintln(a.stdout, "  note: window shorter than 42 days (rehearsal)")
			}
			return nil
		},
	}
	launch.Flags().StringVar(&lo.departments, "departments", "", "departments of residence, comma-separated (e.g. 75,2A,974); empty: all")
	launch.Flags().IntVar(&lo.bornFrom, "born-from", 0, "first birth year")
	launch.Flags().IntVar(&lo.bornTo, "born-to", 0, "last birth year")
	launch.Flags().Int64Var(&lo.limit, "limit", 0, "at most this many accounts")
	launch.Flags().StringVar(&lo.window, "window", "42d", "opposition window: 42d, or shorter for rehearsals (e.g. 2h)")
	launch.Flags().BoolVar(&lo.asJSON, "json", false, "print the result as JSON")
	launch.Flags().Int64Var(&lo.perDay, "per-day", 0, "spread the notices over days, at most this many a day (each person's window counts from their own notice)")
	launch.Flags().StringVar(&lo.startAt, "start-at", "", "send the first notices at this day or time, Paris time (YYYY-MM-DD[THH:MM]); accounts are created now")
	launch.Flags().BoolVar(&lo.dryRun, "dry-run", false, "print what the wave would do (people by department and channel, minors, newborns, exclusions, postage, duration) without writing")

	var statusJSON bool
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Counts of a wave's accounts by state and notices by channel",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			st, err := wave.GetStatus(cmd.Context(), pool, args[0], a.statusOptions())
			if err != nil {
				return err
			}
			if statusJSON {
				return a.printJSON(st)
			}
			a.printStatus(st)
			return nil
		},
	}
	status.Flags().BoolVar(&statusJSON, "json", false, "print the status as JSON")

	list := &cobra.Command{
		Use:   "list",
		Short: "List waves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			waves, err := provisioning.ListWaves(cmd.Context(), pool)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLAUNCHED\tBY\tACCOUNTS\tWINDOW\tDEPARTMENTS")
			for _, w := range waves {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", w.Name, w.LaunchedAt.In(provisioning.Paris).Format("2006-01-02 15:04"),
					w.LaunchedBy, w.Created, w.Window, strings.Join(w.Departments, ","))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(launch, status, list, a.waveExtendCommand(), a.waveRenotifyCommand())
	cmd.AddCommand(a.waveControlCommands()...)
	return cmd
}

func (a *app) printStatus(st *wave.Status) {
	fmt.Fprintf(a.stdout, "wave %s — window %s, launched %s by %s\n", st.Wave, st.Window,
		st.Launched.In(provisioning.Paris).Format("2006-01-02 15:04"), st.By)
	for _, s := range provisioning.States {
		fmt.Fprintf(a.stdout, "  %-10s %d\n", s, st.Accounts[s])
	}
	for _, ch := range []string{"email", "letter"} {
		fmt.Fprintf(a.stdout, "  %s:", ch)
		for _, s := range wave.NoticeStatuses {
			fmt.Fprintf(a.stdout, " %s=%d", s, st.Notices[ch][s])
		}
		fmt.Fprintln(a.stdout)
	}
	l := st.Letters
	fmt.Fprintf(a.stdout, "  letter batches: rendered=%d posted=%d overdue=%d", l.Rendered, l.Posted, l.Overdue)
	if l.Overdue > 0 {
		fmt.Fprintf(a.stdout, " — OVERDUE: the printer has not acknowledged their posting (ens letters batches --state overdue)")
	}
	fmt.Fprintln(a.stdout)
	if l.AwaitingPosting > 0 {
		fmt.Fprintf(a.stdout, "  %d account(s) past their deadline wait for their letter's posting: never activated before\n", l.AwaitingPosting)
	}
	for _, r := range st.Relays {
		if r.Up {
			fmt.Fprintf(a.stdout, "  SMTP relay of worker %s: up\n", r.Worker)
			continue
		}
		fmt.Fprintf(a.stdout, "  SMTP relay of worker %s: DOWN since %s (%s), sending paused, last probed %s\n", r.Worker,
			r.Since.In(provisioning.Paris).Format("2006-01-02 15:04:05"), r.Reason, r.CheckedAt.In(provisioning.Paris).Format("15:04:05"))
	}
}

// previewWave prints what launching spec would do. Postage and rates come
// from ENS_LETTER_POSTAGE (euros, default 0.80), ENS_EMAIL_RATE and
// ENS_LETTER_RATE (per second, defaults from the README's figures).
func (a *app) previewWave(ctx context.Context, pool *pgxpool.Pool, spec provisioning.WaveSpec, asJSON bool) error {
	p, err := wave.DryRun(ctx, pool, spec, wave.PreviewOptions{Now: a.clock.Now(),
		PostagePerLetter: a.cfg.LetterPostage, EmailsPerSecond: a.cfg.EmailRate, LettersPerSecond: a.cfg.LetterRate})
	if err != nil {
		return err
	}
	if asJSON {
		return a.printJSON(p)
	}
	fmt.Fprintf(a.stdout, "dry run of wave %s — nothing written\n  %d selected: %d accounts, %d deceased, %d already enrolled\n",
		spec.Name, p.Selected, p.Accounts, p.ExcludedDeceased, p.ExcludedEnrolled)
	fmt.Fprintf(a.stdout, "  newborns %d, minors told through their representative %d\n  emails %d, letters %d (postage %.2f €), unreachable %d\n  estimated dispatch %s\n",
		p.Newborns, p.Minors, p.ByChannel["email"], p.ByChannel["letter"], p.Postage, p.ByChannel["unreachable"], p.Duration)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEPARTMENT\tACCOUNTS")
	for _, d := range sortedDepartments(p.ByDepartment) {
		fmt.Fprintf(tw, "  %s\t%d\n", d, p.ByDepartment[d])
	}
	return tw.Flush()
}

func sortedDepartments(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dispatchSchedule words a wave's dispatch schedule.
func dispatchSchedule(w *provisioning.Wave) string {
	start := "at once"
	if w.StartAt != nil {
		start = "from " + w.StartAt.In(provisioning.Paris).Format("2006-01-02 15:04 MST")
	}
	if w.PerDay == nil {
		return start
	}
	days := (w.Created + *w.PerDay - 1) / *w.PerDay
	return fmt.Sprintf("%s, at most %d notices a day (%d day(s))", start, *w.PerDay, days)
}
