package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
)

func (a *app) bouncesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bounces", Short: "Handle delivery status notifications"}
	var asJSON bool
	ingest := &cobra.Command{
		Use:   "ingest DIR",
		Short: "Read bounce reports (.eml, RFC 3464) and send a letter to each permanently failed recipient; idempotent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := filepath.Glob(filepath.Join(args[0], "*.eml"))
			if err != nil {
				return err
			}
			sort.Strings(files)
			var ids []int64
			res := struct {
				Files      int      `json:"files"`
				Permanent  int      `json:"permanent"`
				Temporary  int      `json:"temporary"`
				Unreadable []string `json:"unreadable"`
				Letters    int      `json:"letters_queued"`
			}{Files: len(files), Unreadable: []string{}}
			for _, f := range files {
				fh, err := os.Open(f)
				if err != nil {
					res.Unreadable = append(res.Unreadable, filepath.Base(f))
					continue
				}
				b, err := notify.ParseDSN(fh)
				fh.Close()
				if err != nil {
					a.log.Warn("bounce report skipped", "file", filepath.Base(f), "error", err)
					res.Unreadable = append(res.Unreadable, filepath.Base(f))
					continue
				}
				if b.Permanent {
					res.Permanent++
					ids = append(ids, b.NoticeID)
				} else {
					res.Temporary++
				}
			}
			if len(ids) > 0 {
				pool, err := a.db(cmd.Context(), 2, true)
				if err != nil {
					return err
				}
				client, err := jobs.NewInsertClient(pool)
				if err != nil {
					return err
				}
				res.Letters, err = provisioning.FallBackToLetter(cmd.Context(), pool, ids, "bounced", "delivery status notification", jobs.LetterQueuer(client), a.clock)
				if err != nil {
					return err
				}
			}
			if asJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "%d report(s): %d permanent failure(s), %d temporary, %d unreadable; %d letter(s) queued\n",
				res.Files, res.Permanent, res.Temporary, len(res.Unreadable), res.Letters)
			return nil
		},
	}
	ingest.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(ingest)
	return cmd
}
