package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/access"
	"github.com/ens-sante/ens/provisioning/archive"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/wave"
)

// nirInput reads a NIR from the arguments or stdin (secretInput).
func (a *app) nirInput(args []string) (provisioning.NIR, error) {
	s, err := a.secretInput(args, "NIR")
	if err != nil {
		return "", err
	}
	return parseNIRArg(s)
}

func parseNIRArg(s string) (provisioning.NIR, error) {
	n, err := provisioning.ParseNIR(s)
	if err != nil {
		return "", usageError(fmt.Errorf("NIR %s: %w", provisioning.MaskNIR(s), err))
	}
	return n, nil
}

func (a *app) accountCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Look up and act on one person's account"}
	var asJSON bool
	show := &cobra.Command{
		Use:   "show [NIR]",
		Short: "State, deadline and timestamps of a person's account (the NIR on stdin, or as the argument)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nir, err := a.nirInput(args)
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			acc, err := provisioning.GetAccount(cmd.Context(), pool, nir)
			if errors.Is(err, provisioning.ErrReplaced) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			a.log.Info("account looked up", "account_id", acc.ID, "operator", a.cfg.Operator)
			if asJSON {
				return a.printJSON(acc)
			}
			a.printAccount(acc)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	var op, reason string
	var express bool
	act := func(use, short string, f func(cmd *cobra.Command, nir provisioning.NIR) (*provisioning.Account, error)) *cobra.Command {
		c := &cobra.Command{Use: use + " [NIR]", Short: short + " (the NIR on stdin, or as the argument)", Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if op == "" {
					return usageError(errors.New("--operator is required: the action is audited by name"))
				}
				nir, err := a.nirInput(args)
				if err != nil {
					return err
				}
				acc, err := f(cmd, nir)
				if errors.Is(err, provisioning.ErrState) {
					return usageError(err)
				}
				if err != nil {
					return err
				}
				a.printAccount(acc)
				return nil
			}}
		c.Flags().StringVar(&op, "operator", "", "name of the operator (audited)")
		return c
	}
	var birth, checkedBy string
	reinstate := act("reinstate", "Give an account to a person who opposed and changed their mind, after an identity check (--birth-date, --identity-checked-by)",
		func(cmd *cobra.Command, nir provisioning.NIR) (*provisioning.Account, error) {
			if checkedBy == "" {
				return nil, usageError(errors.New("--identity-checked-by is required: a reinstatement gives an account to someone who refused it"))
			}
			b, err := optout.ParseBirthDate(birth)
			if err != nil {
				return nil, usageError(fmt.Errorf("--birth-date: %w", err))
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return nil, err
			}
			acc, err := archive.Reinstate(cmd.Context(), a.store(pool), archive.Reinstatement{NIR: nir, BirthDate: b, Operator: op, IdentityCheckedBy: checkedBy})
			if errors.Is(err, provisioning.ErrNotFound) {
				return nil, usageError(errors.New("no account matches this NIR and birth date"))
			}
			return acc, err
		})
	reinstate.Flags().StringVar(&birth, "birth-date", "", "the person's birth date (YYYY-MM-DD): the NIR alone gives nobody an account")
	reinstate.Flags().StringVar(&checkedBy, "identity-checked-by", "", "the agent who checked the person's identity (audited)")
	del := act("delete", "Close an active account and archive its data for ten years", func(cmd *cobra.Command, nir provisioning.NIR) (*provisioning.Account, error) {
		r := provisioning.DeletionReason(reason)
		if r != archive.ReasonRequest && r != archive.ReasonDeceased && r != archive.ReasonFraud {
			return nil, usageError(errors.New("--reason must be request, deceased or fraud"))
		}
		pool, err := a.db(cmd.Context(), 2)
		if err != nil {
			return nil, err
		}
		return archive.Delete(cmd.Context(), a.store(pool), nir, r, express, op)
	})
	del.Flags().StringVar(&reason, "reason", "request", "request, deceased or fraud")
	del.Flags().BoolVar(&express, "express", false, "the holder asks for express deletion: purged within three months instead of kept ten years")
	reopen := act("reopen", "Restore an archived account within its ten years", func(cmd *cobra.Command, nir provisioning.NIR) (*provisioning.Account, error) {
		pool, err := a.db(cmd.Context(), 2)
		if err != nil {
			return nil, err
		}
		return archive.Reopen(cmd.Context(), a.store(pool), nir, op)
	})
	var exportJSON bool
	var exportPDF string
	export := &cobra.Command{
		Use:   "export [NIR]",
		Short: "Everything ens holds about a person (RGPD art. 15): registry data, states, notices (never the code), oppositions, audit events, retention; audited",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if op == "" {
				op = a.cfg.Operator
			}
			nir, err := a.nirInput(args)
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			x, err := access.Of(cmd.Context(), a.store(pool), nir, op)
			if errors.Is(err, provisioning.ErrNotFound) {
				return usageError(errors.New("no person with this NIR in the registry"))
			}
			if err != nil {
				return err
			}
			switch {
			case exportJSON:
				return a.printJSON(x)
			case exportPDF != "":
				b, err := notify.RenderDocument(exportTitle, x.At, exportSections(x))
				if err != nil {
					return err
				}
				// It holds the person's data: for them, readable by its owner only.
				if err := os.WriteFile(exportPDF, b, 0o600); err != nil {
					return fmt.Errorf("writing the export: %w", err)
				}
				fmt.Fprintf(a.stdout, "export written to %s: the person's data, for them only; keep no copy\n", exportPDF)
				return nil
			}
			a.printExport(x)
			return nil
		},
	}
	export.Flags().BoolVar(&exportJSON, "json", false, "print everything as JSON")
	export.Flags().StringVar(&exportPDF, "pdf", "", "write it as a PDF to this file, for the person (mode 0600)")
	export.Flags().StringVar(&op, "operator", "", "name of the operator answering the request (audited; default $ENS_OPERATOR)")
	cmd.AddCommand(show, reinstate, del, reopen, export)
	return cmd
}

func (a *app) printAccount(acc *provisioning.Account) {
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.In(provisioning.Paris).Format("2006-01-02 15:04:05 MST")
	}
	if acc.ID == 0 {
		fmt.Fprintf(a.stdout, "no account (%s): opposed %s, before any wave selected them; no wave will\n", acc.NIRMasked, ts(acc.OpposedAt))
		return
	}
	fmt.Fprintf(a.stdout, "account %d (%s), wave %s: %s\n  created %s, notified %s, deadline %s\n  opposed %s, activated %s, closed %s, cancelled %s\n",
		acc.ID, acc.NIRMasked, acc.Wave, acc.State, acc.CreatedAt.In(provisioning.Paris).Format("2006-01-02 15:04:05 MST"),
		ts(acc.NotifiedAt), ts(acc.Deadline), ts(acc.OpposedAt), ts(acc.ActivatedAt), ts(acc.ClosedAt), ts(acc.CancelledAt))
	if x := acc.Archive; x != nil {
		if x.PurgeDue != nil {
			fmt.Fprintf(a.stdout, "  deleted %s (%s, express): purged by %s\n", ts(&x.DeletedAt), x.Reason, ts(x.PurgeDue))
		} else {
			fmt.Fprintf(a.stdout, "  deleted %s (%s): archived until %s\n", ts(&x.DeletedAt), x.Reason, ts(x.RetainUntil))
		}
	}
}

func (a *app) waveExtendCommand() *cobra.Command {
	var until string
	cmd := &cobra.Command{
		Use:   "extend NAME",
		Short: "Extend a wave's window to the end of a later day; the people concerned are told",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := time.Parse(time.DateOnly, until)
			if err != nil {
				return usageError(errors.New("--until must be a date, YYYY-MM-DD"))
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			n, err := wave.Extend(cmd.Context(), a.store(pool), args[0], day, a.cfg.Operator)
			if errors.Is(err, provisioning.ErrState) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			client, err := jobs.NewInsertClient(pool)
			if err != nil {
				return err
			}
			if _, err := client.Insert(cmd.Context(), jobs.SendExtensionsArgs{}, nil); err != nil {
				return fmt.Errorf("queueing extension notices: %w", err)
			}
			fmt.Fprintf(a.stdout, "wave %s extended to %s inclus: %d people will be told\n", args[0], until, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&until, "until", "", "new last day (YYYY-MM-DD), later than every current deadline")
	return cmd
}

func (a *app) archiveCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "archive", Short: "The ten-year archive of deleted accounts"}
	var dry, asJSON bool
	purge := &cobra.Command{
		Use:   "purge",
		Short: "Purge archives past their retention (a non-identifying trace stays)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := a.cfg.codeKey()
			if err != nil {
				return usageError(err)
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			var due int64
			if err := pool.QueryRow(cmd.Context(), `SELECT count(*) FROM archive WHERE retain_until <= now()`).Scan(&due); err != nil {
				return err
			}
			res, err := archive.PurgeWithProgress(cmd.Context(), a.store(pool), key.NIRKey(), dry, a.progress("archive purge", due))
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			if dry {
				fmt.Fprintf(a.stdout, "%d archive(s) due; dry run, nothing purged\n", res.Due)
			} else {
				fmt.Fprintf(a.stdout, "%d archive(s) due; %d purged\n", res.Due, res.Purged)
			}
			return nil
		},
	}
	purge.Flags().BoolVar(&dry, "dry-run", false, "count what is due without purging")
	purge.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	stats := &cobra.Command{
		Use:   "stats",
		Short: "The archive in aggregate: counts by reason and year (what auditors may read)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			rows, err := archive.Counts(cmd.Context(), pool)
			if err != nil {
				return err
			}
			return a.printJSON(rows)
		},
	}
	cmd.AddCommand(purge, stats)
	return cmd
}

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The hash-chained audit log"}
	var asJSON, unkeyed bool
	var anchorFile string
	maxAnchorAge := durationFlag(2 * time.Hour)
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk the chain and name the first changed or removed event (needs ENS_AUDIT_KEY)",
		Long: "Walk the audit chain under ENS_AUDIT_KEY and name the first changed, removed or re-hashed event. Without the key\n" +
			"ens refuses to vouch for the log: whoever owns the tables could have re-chained it. --unkeyed checks the chain's\n" +
			"consistency alone, which proves nothing against the tables' owner. --anchor FILE also checks the signed heads\n" +
			"shipped out of the database's reach: their chain, and that the newest is younger than --max-anchor-age.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := a.auditKey
			switch {
			case key == nil && !unkeyed:
				return usageError(errors.New("ens audit verify needs ENS_AUDIT_KEY: without it, whoever owns the tables could have " +
					"re-chained the log and it would still look intact (--unkeyed checks consistency only, and proves nothing against them)"))
			case key == nil && anchorFile != "":
				return usageError(errors.New("--anchor needs ENS_AUDIT_KEY: anchors are signed with it"))
			case key != nil && unkeyed:
				return usageError(errors.New("--unkeyed is for a machine without ENS_AUDIT_KEY; with the key, verify it"))
			}
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			var anchors []audit.Anchor
			if anchorFile != "" {
				if anchors, err = readAnchors(anchorFile); err != nil {
					return err
				}
			}
			res, err := audit.VerifyAnchored(cmd.Context(), pool, anchors, audit.Ring(a.cfg.AuditPreviousKeys, key))
			if err != nil {
				return err
			}
			if anchorFile != "" && res.OK {
				switch last := len(anchors) - 1; {
				case last < 0:
					res.OK, res.Problem = false, "the anchors file holds no anchor"
				case a.clock.Now().Sub(anchors[last].At) > time.Duration(maxAnchorAge):
					res.OK, res.Problem = false, fmt.Sprintf("the newest anchor was taken %s, more than %s ago: anchors stopped, or the file was cut back",
						anchors[last].At.Format(time.RFC3339), maxAnchorAge.String())
				}
				if !res.OK {
					next := res.Events + 1
					res.FirstBroken = &next
				}
			}
			if asJSON {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else if res.OK && unkeyed {
				fmt.Fprintf(a.stdout, "audit log consistent: %d events (unkeyed check: it proves nothing against whoever owns the tables)\n", res.Events)
			} else if res.OK {
				fmt.Fprintf(a.stdout, "audit log intact: %d events\n", res.Events)
			} else {
				fmt.Fprintf(a.stdout, "audit log BROKEN at event %d: %s (%d events)\n", *res.FirstBroken, res.Problem, res.Events)
			}
			if !res.OK {
				return &exitError{code: exitAuditBroken, err: errors.New("audit chain verification failed")}
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	verify.Flags().StringVar(&anchorFile, "anchor", "", "also check the heads recorded in this anchors file (detects events removed from the end)")
	verify.Flags().BoolVar(&unkeyed, "unkeyed", false, "without ENS_AUDIT_KEY: check the chain's consistency only (proves nothing against the tables' owner)")
	verify.Flags().Var(&maxAnchorAge, "max-anchor-age", "with --anchor: the newest anchor must be younger than this")
	anchor := &cobra.Command{
		Use:   "anchor [--file FILE]",
		Short: "Print the audit log's head (id, hash, time; signed with ENS_AUDIT_KEY) and append it to FILE, to ship elsewhere",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.db(cmd.Context(), 2)
			if err != nil {
				return err
			}
			key := a.auditKey
			if key == nil {
				a.log.Warn("ENS_AUDIT_KEY is not set: the anchor is not signed")
			}
			prev := ""
			if anchorFile != "" {
				if _, err := os.Stat(anchorFile); err == nil {
					anchors, err := readAnchors(anchorFile)
					if err != nil {
						return err
					}
					if len(anchors) > 0 {
						prev = anchors[len(anchors)-1].MAC
					}
				}
			}
			anc, err := audit.TakeAnchor(cmd.Context(), pool, key, a.clock.Now(), prev)
			if err != nil {
				return err
			}
			line, _ := json.Marshal(anc)
			fmt.Fprintln(a.stdout, string(line))
			if anchorFile == "" {
				return nil
			}
			f, err := os.OpenFile(anchorFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640) //nolint:gosec // signed heads, no secret: the group that ships them reads them
			if err != nil {
				return fmt.Errorf("opening the anchors file: %w", err)
			}
			if _, err := f.Write(append(line, '\n')); err != nil {
				f.Close()
				return fmt.Errorf("writing the anchors file: %w", err)
			}
			return f.Close()
		},
	}
	anchor.Flags().StringVar(&anchorFile, "file", "", "append the anchor to this file")
	cmd.AddCommand(verify, anchor)
	return cmd
}

// readAnchors reads an anchors file.
func readAnchors(path string) ([]audit.Anchor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the anchors file: %w", err)
	}
	defer f.Close()
	anchors, err := audit.ReadAnchors(f)
	if err != nil {
		return nil, usageError(err)
	}
	return anchors, nil
}

// exportSections is a person's data export as they read it, in French:
// the same sections in the text and the PDF.
func exportSections(x *access.Export) []notify.Section {
	keys := make([]string, 0, len(x.Person))
	for k := range x.Person {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	registry := notify.Section{Title: "Registre"}
	for _, k := range keys {
		if v := x.Person[k]; v != nil {
			registry.Lines = append(registry.Lines, fmt.Sprintf("%-14s %v", k, v))
		}
	}
	states := notify.Section{Title: "États du profil"}
	for _, st := range x.States {
		states.Lines = append(states.Lines, strings.TrimSpace(fmt.Sprintf("%s  %s %s", provisioning.FrenchDateTime(st.At), st.State, st.Cause)))
	}
	notices := notify.Section{Title: "Avis (jamais le code)"}
	for _, n := range x.Notices {
		l := fmt.Sprintf("%s par %s : %s", n.Kind, n.Channel, n.Status)
		if n.SentAt != nil {
			l += ", envoyé le " + provisioning.FrenchDateTime(*n.SentAt)
		}
		if n.Deadline != nil {
			l += ", opposition possible " + provisioning.FrenchDeadline(*n.Deadline)
		}
		notices.Lines = append(notices.Lines, l)
	}
	oppositions := notify.Section{Title: "Oppositions"}
	for _, o := range x.Oppositions {
		l := fmt.Sprintf("%s le %s (%s)", o.Reference, provisioning.FrenchDateTime(o.At), o.Channel)
		if o.WithdrawnAt != nil {
			l += ", annulée le " + provisioning.FrenchDateTime(*o.WithdrawnAt)
		}
		oppositions.Lines = append(oppositions.Lines, l)
	}
	events := notify.Section{Title: "Journal d'audit"}
	for _, e := range x.Events {
		events.Lines = append(events.Lines, fmt.Sprintf("%s  %s (%s)", provisioning.FrenchDateTime(e.At), e.Action, e.Actor))
	}
	return []notify.Section{registry, states, notices, oppositions, events, {Title: "Conservation", Lines: x.Retention}}
}

// exportTitle heads a person's data export.
const exportTitle = "Données détenues par Mon espace santé (ens)"

// printExport writes a person's data export for them to read.
func (a *app) printExport(x *access.Export) {
	w := a.stdout
	fmt.Fprintf(w, "%s, exportées le %s\n", exportTitle, provisioning.FrenchDateTime(x.At))
	for _, s := range exportSections(x) {
		fmt.Fprintf(w, "\n%s :\n", s.Title)
		for _, l := range s.Lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
}
