package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
)

func (a *app) bouncesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bounces", Short: "Read delivery status notifications (RFC 3464, RFC 6533) from the bounce mailbox"}
	var asJSON bool
	ingest := &cobra.Command{
		Use:   "ingest MAILBOX",
		Short: "Read a Maildir, an mbox or a folder of .eml files once; each permanently failed recipient gets a letter; idempotent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.bounceIngester(cmd.Context())
			if err != nil {
				return err
			}
			c, err := in(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				err = a.printJSON(c)
			} else {
				a.printBounceCounts(c)
			}
			if err == nil && c.Unreadable > 0 {
				err = &exitError{code: exitPartial, err: fmt.Errorf("%s: %d of %d file(s) could not be read as mail, the others were", args[0], c.Unreadable, c.Messages)}
			}
			return err
		},
	}
	ingest.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON")
	var every time.Duration
	watch := &cobra.Command{
		Use:   "watch MAILDIR",
		Short: "Read the bounce mailbox now and then every --every, until SIGINT/SIGTERM",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.bounceIngester(cmd.Context())
			if err != nil {
				return err
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				c, err := in(args[0])
				if err != nil {
					return err
				}
				if c.Messages > 0 {
					a.log.Info("bounce reports read", "messages", c.Messages, "permanent", c.Permanent, "temporary", c.Temporary,
						"success", c.Success, "not_a_report", c.NotAReport, "not_ours", c.NotOurs, "unreadable", c.Unreadable, "letters_queued", c.Letters)
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	watch.Flags().DurationVar(&every, "every", 30*time.Second, "how often to read the mailbox")
	cmd.AddCommand(ingest, watch)
	return cmd
}

// bounceIngester returns the function that reads a bounce mailbox once.
func (a *app) bounceIngester(ctx context.Context) (func(path string) (jobs.BounceCounts, error), error) {
	key, err := a.cfg.codeKey()
	if err != nil {
		return nil, usageError(err)
	}
	reader, err := notify.NewBounceReader(key.MailKey(), a.cfg.BounceAddress, a.cfg.MailFrom)
	if err != nil {
		return nil, usageError(err)
	}
	pool, client, err := a.queue(ctx)
	if err != nil {
		return nil, err
	}
	return func(path string) (jobs.BounceCounts, error) {
		return jobs.IngestBounces(ctx, a.store(pool), reader, path, jobs.LetterQueuer(client), a.log)
	}, nil
}

func (a *app) printBounceCounts(c jobs.BounceCounts) {
	fmt.Fprintf(a.stdout, "%d message(s): %d report(s) about our notices — %d permanent failure(s), %d temporary, %d success(es); "+
		"%d not a report, %d not ours, %d unreadable; %d letter(s) queued\n",
		c.Messages, c.Parsed, c.Permanent, c.Temporary, c.Success, c.NotAReport, c.NotOurs, c.Unreadable, c.Letters)
}
