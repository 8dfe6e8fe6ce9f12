package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/notify/mailsink"
)

func (a *app) mailsinkCommand() *cobra.Command {
	var opts mailsink.Options
	cmd := &cobra.Command{
		Use:   "mailsink",
		Short: "Run a local SMTP server that stores every message as an .eml file (staging, demo)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := mailsink.Start(opts)
			if err != nil {
				return err
			}
			defer s.Close()
			fmt.Fprintf(a.stdout, "SMTP_URL=%s  (messages in %s)\n", s.URL(), opts.Dir)
			<-cmd.Context().Done()
			a.log.Info("mail sink stopping", "accepted", s.Count())
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Addr, "addr", "127.0.0.1:2525", "listen address (loopback)")
	cmd.Flags().StringVar(&opts.Dir, "dir", "var/outbox", "directory for .eml files")
	return cmd
}
