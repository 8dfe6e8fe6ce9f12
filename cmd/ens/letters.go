package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/wave"
)

// postingOptions gives the delivery delay, and the operator from --operator
// or ENS_OPERATOR.
func (a *app) postingOptions(op string) notice.PostingOptions {
	if op == "" {
		op = a.cfg.Operator
	}
	return notice.PostingOptions{Operator: op, Delivery: a.cfg.Delivery}
}

// statusOptions: wave status and reports read now, with ENS_POSTING_SLA.
func (a *app) statusOptions() wave.StatusOptions {
	return wave.StatusOptions{At: a.clock.Now(), PostingSLA: a.cfg.PostingSLA, AuditKey: a.auditKey, AuditPreviousKeys: a.cfg.AuditPreviousKeys}
}

func (a *app) lettersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "letters", Short: "The printer's round trip: batches, posting acknowledgements, returned letters"}

	var wave, state string
	var asJSON bool
	batches := &cobra.Command{
		Use:   "batches",
		Short: "The printer's authoritative list of letter batches: file, SHA-256, pages, department, state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			bs, err := notice.ListLetterBatches(cmd.Context(), pool, notice.BatchFilter{Wave: wave, State: state,
				SLA: a.cfg.PostingSLA}, a.clock.Now())
			if err != nil {
				return usageError(err)
			}
			if asJSON {
				if bs == nil {
					bs = []notice.LetterBatch{}
				}
				return a.printJSON(bs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BATCH\tWAVE\tDEPT\tPAGES\tRENDERED\tSTATE\tPOSTED\tPULL PAGES\tSHA256\tFILE")
			for _, b := range bs {
				posted := "-"
				if b.PostedOn != nil {
					posted = b.PostedOn.Format(time.DateOnly)
				}
				pages := make([]string, len(b.PagesWithdrawn))
				for i, p := range b.PagesWithdrawn {
					pages[i] = strconv.Itoa(int(p))
				}
				pull := cmp.Or(strings.Join(pages, ","), "-")
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Wave, b.Department, b.Pages,
					b.RenderedAt.In(provisioning.Paris).Format("2006-01-02 15:04"), b.State, posted, pull, b.SHA256, b.File)
			}
			return tw.Flush()
		},
	}
	batches.Flags().StringVar(&wave, "wave", "", "only this wave's batches")
	batches.Flags().StringVar(&state, "state", "", "only batches rendered (not yet posted, overdue included), posted or overdue")
	batches.Flags().BoolVar(&asJSON, "json", false, "print as JSON")

	var on, op, sha string
	posted := &cobra.Command{
		Use:   "posted BATCH|FILE --on YYYY-MM-DD",
		Short: "Record the day the printer handed a batch to La Poste (its id, PDF or manifest); audited",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := time.Parse(time.DateOnly, on)
			if err != nil {
				return usageError(errors.New("--on: expected the posting day as YYYY-MM-DD"))
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			p, err := notice.AcknowledgePosting(cmd.Context(), a.store(pool), args[0], day, sha, a.postingOptions(op))
			if errors.Is(err, notice.ErrPostingDate) || errors.Is(err, provisioning.ErrNotFound) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(p)
			}
			if p.Already {
				fmt.Fprintf(a.stdout, "batch %d was already acknowledged as posted on %s; nothing changed\n", p.BatchID, on)
				return nil
			}
			fmt.Fprintf(a.stdout, "batch %d posted on %s: %d letter(s) sent\n", p.BatchID, on, p.Letters)
			return nil
		},
	}
	posted.Flags().StringVar(&on, "on", "", "the posting day, YYYY-MM-DD (required)")
	posted.Flags().StringVar(&op, "operator", "", "name of the operator (audited; default $ENS_OPERATOR)")
	posted.Flags().StringVar(&sha, "sha256", "", "the SHA-256 the printer computed: refused if it is not the batch's")
	posted.Flags().BoolVar(&asJSON, "json", false, "print as JSON")

	acks := a.letterFileCommand("acks FILE", "Record a printer's file of posting acknowledgements (CSV: batch,posted_on[,sha256]); audited",
		&op, &asJSON, func(ctx context.Context, pool *pgxpool.Pool, f io.Reader, actor string) (any, string, []notice.FileLineError, error) {
			opts := a.postingOptions(actor)
			res, err := notice.AcknowledgeFile(ctx, a.store(pool), f, opts)
			if err != nil {
				return nil, "", nil, err
			}
			return res, fmt.Sprintf("%d line(s): %d batch(es) acknowledged (%d letters sent), %d already, %d refused",
				res.Lines, res.Batches, res.Letters, res.Already, len(res.Rejected)), res.Rejected, nil
		})
	returned := a.letterFileCommand("returned FILE", "Record letters La Poste brought back (CSV: reference,returned_on[,reason]): their people become unreachable; audited",
		&op, &asJSON, func(ctx context.Context, pool *pgxpool.Pool, f io.Reader, actor string) (any, string, []notice.FileLineError, error) {
			res, err := notice.RecordReturns(ctx, a.store(pool), f, actor)
			if err != nil {
				return nil, "", nil, err
			}
			return res, fmt.Sprintf("%d line(s): %d letter(s) returned, %d person(s) now unreachable, %d returned after activation, %d refused",
				res.Lines, res.Returned, res.Unreachable, res.AfterActivation, len(res.Rejected)), res.Rejected, nil
		})

	var overdue bool
	reprint := &cobra.Command{
		Use:   "reprint BATCH...|--overdue",
		Short: "Withdraw batches lost or not posted in time and render their letters again with fresh dates (same codes); audited",
		Long: "Withdraw letter batches the printer lost, or did not post in time for the dates they print, and put their\n" +
			"letters back to be rendered by the worker in new batches, with dates counted from the new rendering and the\n" +
			"same codes. A withdrawn batch can no longer be acknowledged as posted: the printer must destroy it.\n" +
			"--overdue withdraws every batch not acknowledged within ENS_POSTING_SLA of its rendering.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if overdue == (len(args) > 0) {
				return usageError(errors.New("give batch ids, or --overdue"))
			}
			ids := make([]int64, len(args))
			for i, arg := range args {
				id, err := strconv.ParseInt(arg, 10, 64)
				if err != nil {
					return usageError(fmt.Errorf("%q is not a batch id", arg))
				}
				ids[i] = id
			}
			if op == "" {
				op = a.cfg.Operator
			}
			pool, client, err := a.queue(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := notice.ReprintBatches(cmd.Context(), a.store(pool), ids, overdue, a.cfg.PostingSLA, op, jobs.LetterQueuer(client))
			if errors.Is(err, notice.ErrNotReprintable) || errors.Is(err, provisioning.ErrNotFound) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				if rs == nil {
					rs = []notice.Reprint{}
				}
				return a.printJSON(rs)
			}
			for _, r := range rs {
				fmt.Fprintf(a.stdout, "batch %d (%s, department %s) withdrawn: %d letter(s) to render again; destroy its printed copies\n",
					r.BatchID, r.Wave, r.Department, r.Letters)
			}
			if len(rs) == 0 {
				fmt.Fprintln(a.stdout, "no overdue batch")
			}
			return nil
		},
	}
	reprint.Flags().BoolVar(&overdue, "overdue", false, "every batch not acknowledged within ENS_POSTING_SLA of its rendering")
	reprint.Flags().StringVar(&op, "operator", "", "name of the operator (audited; default $ENS_OPERATOR)")
	reprint.Flags().BoolVar(&asJSON, "json", false, "print as JSON")

	cmd.AddCommand(batches, posted, acks, returned, reprint)
	return cmd
}

// letterFileCommand is a command that records a file from the printer or
// La Poste: it opens the file, runs record with the operator's name, and
// prints the summary and every refused line (or all as JSON).
func (a *app) letterFileCommand(use, short string, op *string, asJSON *bool,
	record func(ctx context.Context, pool *pgxpool.Pool, f io.Reader, actor string) (any, string, []notice.FileLineError, error)) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("reading %s: %w", args[0], err)
			}
			defer f.Close()
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			actor := *op
			if actor == "" {
				actor = a.cfg.Operator
			}
			res, summary, rejected, err := record(cmd.Context(), pool, f, actor)
			if err != nil {
				return usageError(fmt.Errorf("%s: %w", args[0], err))
			}
			if *asJSON {
				err = a.printJSON(res)
			} else {
				fmt.Fprintln(a.stdout, summary)
				for _, r := range rejected {
					fmt.Fprintf(a.stdout, "  line %d: %s\n", r.Line, r.Reason)
				}
			}
			if err == nil && len(rejected) > 0 {
				// The printer's nightly job must notice: the other lines
				// are applied, these wait for a corrected file.
				err = &exitError{code: exitPartial, err: fmt.Errorf("%s: %d line(s) refused, the others applied", args[0], len(rejected))}
			}
			return err
		}}
	cmd.Flags().StringVar(op, "operator", "", "name of the operator (audited; default $ENS_OPERATOR)")
	cmd.Flags().BoolVar(asJSON, "json", false, "print as JSON")
	return cmd
}

func (a *app) waveRenotifyCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "renotify NAME",
		Short: "Send a new notice, with a new window, to the wave's unreachable people whose registry row now gives a channel; audited",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, client, err := a.queue(cmd.Context())
			if err != nil {
				return err
			}
			res, err := wave.Renotify(cmd.Context(), a.store(pool), args[0], a.cfg.Operator, jobs.Enqueuer(client))
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "wave %s: %d unreachable person(s) re-notified; %d still unreachable (no new contact details since)\n",
				args[0], res.Renotified, res.StillUnreachable)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
