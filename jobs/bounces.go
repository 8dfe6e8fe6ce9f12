package jobs

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// BounceCounts is what a reading of the bounce mailbox found, one count per
// message: parsed (a delivery status notification about one of our
// notices, naming the address it went to), and of those permanent,
// temporary or success; otherwise not a report, not ours (no valid bounce
// address, or another recipient than the notice's), or unreadable.
type BounceCounts struct {
	Messages   int `json:"messages"`
	Parsed     int `json:"parsed"`
	Permanent  int `json:"permanent"`
	Temporary  int `json:"temporary"`
	Success    int `json:"success"`
	NotAReport int `json:"not_a_report"`
	NotOurs    int `json:"not_ours"`
	Unreadable int `json:"unreadable"`
	// Letters: people switched to a letter by this reading (a report read
	// again switches nobody twice).
	Letters int `json:"letters_queued"`
}

// IngestBounces reads every unprocessed message of the bounce mailbox at
// path (a Maildir, an mbox or a folder of .eml files) and switches to a
// letter each person whose email a believed report says failed for good.
// Logs name files and notice ids, never an address.
func IngestBounces(ctx context.Context, st *provisioning.Store, reader *notify.BounceReader, path string,
	letters provisioning.LetterFunc, log *slog.Logger) (BounceCounts, error) {
	var c BounceCounts
	err := notify.EachMessage(path, func(name string, r io.Reader) error {
		c.Messages++
		b, err := reader.Read(r)
		switch {
		case errors.Is(err, notify.ErrNotDSN):
			c.NotAReport++
			return nil
		case errors.Is(err, notify.ErrNotOurs):
			c.NotOurs++
			log.Warn("bounce report not believed: no valid bounce address", "file", name)
			return nil
		case err != nil:
			c.Unreadable++
			log.Warn("bounce report unreadable", "file", name)
			return nil
		}
		outcome, status, ok, err := believe(ctx, st.Pool, b)
		if err != nil {
			return err
		}
		if !ok {
			c.NotOurs++
			log.Warn("bounce report not believed: it names another recipient than the notice's", "file", name, "notice_id", b.NoticeID)
			return nil
		}
		c.Parsed++
		switch outcome {
		case notify.BouncePermanent:
			c.Permanent++
			n, err := notice.FallBackToLetter(ctx, st, []int64{b.NoticeID}, "bounced", "delivery status notification "+status, letters)
			if err != nil {
				return fmt.Errorf("switching notice %d to a letter: %w", b.NoticeID, err)
			}
			c.Letters += n
		case notify.BounceTemporary:
			c.Temporary++
		default:
			c.Success++
		}
		return nil
	})
	if cerr := c.record(ctx, st.Pool); err == nil {
		err = cerr
	}
	return c, err
}

// record adds a reading's counts to the running totals /metrics reports
// (ens_bounce_reports_total).
func (c BounceCounts) record(ctx context.Context, pool *pgxpool.Pool) error {
	outcomes := []string{"permanent", "temporary", "success", "not_a_report", "not_ours", "unreadable"}
	counts := []int{c.Permanent, c.Temporary, c.Success, c.NotAReport, c.NotOurs, c.Unreadable}
	if _, err := pool.Exec(ctx, `INSERT INTO bounce_reading AS b (outcome, reports) SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (outcome) DO UPDATE SET reports = b.reports + excluded.reports`, outcomes, counts); err != nil {
		return fmt.Errorf("counting the bounce reports read: %w", err)
	}
	return nil
}

// believe picks the report's group about the notice's own recipient: ok is
// false when no group names the address the notice went to.
func believe(ctx context.Context, pool *pgxpool.Pool, b *notify.Bounce) (notify.BounceOutcome, string, bool, error) {
	hashes, err := notice.EmailRecipientHashes(ctx, pool, []int64{b.NoticeID})
	if err != nil {
		return "", "", false, err
	}
	want, found := hashes[b.NoticeID]
	if !found {
		return "", "", false, nil
	}
	for _, r := range b.Recipients {
		if slices.ContainsFunc(r.Hashes, func(h []byte) bool { return len(h) == len(want) && subtle.ConstantTimeCompare(h, want) == 1 }) {
			return r.Outcome, r.Status, true, nil
		}
	}
	return "", "", false, nil
}
