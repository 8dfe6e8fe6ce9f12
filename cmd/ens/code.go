package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

func (a *app) codeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "code", Short: "A person's opposition code"}
	var op string
	var asJSON bool
	resend := &cobra.Command{
		Use: "resend [NIR]",
		Short: "Send a person's code again, through the channel on file (the NIR on stdin, or as the argument); " +
			"at most once a day and three times, audited",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if op == "" {
				return usageError(errors.New("--operator is required: the resend is audited by name"))
			}
			nir, err := a.nirInput(args)
			if err != nil {
				return err
			}
			pool, client, err := a.queue(cmd.Context())
			if err != nil {
				return err
			}
			emails := func(ctx context.Context, tx pgx.Tx) error {
				_, err := client.InsertTx(ctx, tx, jobs.SendExtensionsArgs{}, nil)
				return err
			}
			req := notice.ResendRequest{NIR: nir, Operator: op, PostDelay: a.cfg.PostDelay, Delivery: a.cfg.Delivery}
			res, err := notice.ResendCode(cmd.Context(), a.store(pool), req, emails, jobs.LetterQueuer(client))
			if errors.Is(err, provisioning.ErrState) || errors.Is(err, notice.ErrResendLimit) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			a.log.Info("code re-sent", "account_id", res.AccountID, "channel", res.Channel, "operator", op)
			if asJSON {
				return a.printJSON(res)
			}
			how := "by email, to the address on file"
			if res.Channel == provisioning.ChannelLetter {
				how = "by letter, to the postal address on file"
			}
			fmt.Fprintf(a.stdout, "code of %s re-sent %s (notice %s, resend %d of %d); deadline unchanged: %s\n",
				nir.Masked(), how, res.Reference, res.Seq, notice.MaxResends, res.Deadline.In(provisioning.Paris).Format("2006-01-02 15:04"))
			return nil
		},
	}
	resend.Flags().StringVar(&op, "operator", "", "name of the operator or agent (audited)")
	resend.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.AddCommand(resend)
	return cmd
}
