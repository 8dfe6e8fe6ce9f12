package notice

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// LetterFile is what rendering a batch produced.
type LetterFile struct {
	File, Manifest, SHA256 string
	// Pages maps notice id to page number.
	Pages map[int64]int
	// CodeHashes maps account id to the lookup hash of the code its letter
	// carries, stored on the account as it becomes notified.
	CodeHashes map[int64][]byte
	// Publish gives the files their final names once the batch is
	// committed; Discard removes them when it is not. The files hold codes:
	// none may outlive a batch that no table records.
	Publish func() error
	Discard func()
}

// RenderFunc renders targets (sorted by postcode) as batch batchID, each
// letter printing its target's Deadline, and writes the files.
type RenderFunc func(batchID int64, targets []provisioning.Target) (*LetterFile, error)

// LetterOptions tune letter batches.
type LetterOptions struct {
	// PostDelay is the print-and-post delay added to the render day before
	// the window starts (the CLI's default is 5 days; zero in tests): a
	// batch posted later must be reprinted.
	PostDelay time.Duration
	// Delivery is La Poste's delay to the batch's destination, added too,
	// so that the printed date leaves the whole window after delivery.
	Delivery provisioning.Delivery
	// BatchSize is the most letters a PDF holds (default LetterBatchSize).
	BatchSize int
}

// RenderLetterBatches renders every pending letter of one wave and
// department, in batches. Each batch is one transaction: the letters are
// marked sent with the deadline printed on them — the one the system honours
// — and their accounts notified, or nothing is. Returns letters rendered.
func RenderLetterBatches(ctx context.Context, st *provisioning.Store, waveID int64, department string, render RenderFunc, opts LetterOptions) (int, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = LetterBatchSize
	}
	wave, err := provisioning.GetWaveByID(ctx, st.Pool, waveID)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		n := 0
		var f *LetterFile
		committing := false
		err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
			now := st.Clock.Now()
			// Pick the batch by the indexed department first; only then
			// resolve the addresses of those accounts.
			rows, err := tx.Query(ctx, `WITH picked AS (
					SELECT n.id, n.kind, coalesce(n.topic, '') AS topic, n.created_at, n.account_id, CASE WHEN n.kind IN ('resend', 'copy') THEN a.deadline END AS deadline
					FROM `+pendingLetters+` AND n.department = $3 AND a.wave_id = $1
					ORDER BY n.id LIMIT $4 FOR UPDATE OF n SKIP LOCKED)
				SELECT pk.id, pk.kind, pk.topic, pk.created_at, pk.deadline, t.* FROM `+pickedTargets+` ORDER BY t.pc, pk.id`, waveID, provisioning.Day(now), department, opts.BatchSize)
			if err != nil {
				return fmt.Errorf("selecting letters to render: %w", err)
			}
			targets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (provisioning.Target, error) {
				t := provisioning.Target{Channel: provisioning.ChannelLetter}
				err := scanTargetInto(row, &t, &t.NoticeID, &t.Kind, &t.Topic, &t.ChangedAt, &t.Deadline)
				return t, err
			})
			if err != nil {
				return fmt.Errorf("reading letters to render: %w", err)
			}
			n = len(targets)
			if n == 0 {
				return nil
			}
			// Each letter prints its deadline: the window from the render day,
			// the post delay and the delivery, for an extension the day the operator chose,
			// for a re-sent code or a curator's copy its account's.
			deadline := wave.PrintedDeadline(now, opts.PostDelay+opts.Delivery.For(department))
			for i := range targets {
				d := deadline
				switch targets[i].Kind {
				case provisioning.NoticeExtension:
					d = wave.NoticeDeadline(provisioning.NoticeExtension, now)
				case provisioning.NoticeResend, provisioning.NoticeCopy:
					d = wave.TargetDeadline(&targets[i], now)
				}
				targets[i].Deadline = &d
			}
			var batchID int64
			if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('letter_batch', 'id'))`).Scan(&batchID); err != nil {
				return err
			}
			f, err = render(batchID, targets)
			if err != nil {
				return fmt.Errorf("rendering letter batch: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO letter_batch (id, wave_id, department, file, manifest, sha256, pages, rendered_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, batchID, waveID, department, f.File, f.Manifest, f.SHA256, len(targets), now); err != nil {
				return fmt.Errorf("recording letter batch: %w", err)
			}
			ids, pages, printed := make([]int64, n), make([]int32, n), make([]time.Time, n)
			var accs []int64
			var ats, deadlines []time.Time
			var hashes [][]byte
			for i, t := range targets {
				ids[i], pages[i], printed[i] = t.NoticeID, int32(f.Pages[t.NoticeID]), *t.Deadline //nolint:gosec // a page of at most LetterBatchSize
				if t.Kind == provisioning.NoticeChange {
					continue // tells of a change: moves no account
				}
				accs, ats, deadlines = append(accs, t.AccountID), append(ats, now), append(deadlines, *t.Deadline)
				hashes = append(hashes, f.CodeHashes[t.AccountID])
			}
			// Printed, not sent: a letter informs its person once posted
			// (AcknowledgePosting).
			if _, err := tx.Exec(ctx, `UPDATE notice n SET status = 'printed', batch_id = $3, page = p.page,
					deadline = CASE WHEN n.kind IN ('information', 'change') THEN NULL ELSE p.deadline END, attempts = n.attempts + 1
				FROM unnest($1::bigint[], $2::int[], $4::timestamptz[]) AS p(id, page, deadline) WHERE n.id = p.id`,
				ids, pages, batchID, printed); err != nil {
				return fmt.Errorf("marking letters rendered: %w", err)
			}
			if err := notifyAccounts(ctx, tx, accs, ats, deadlines, hashes); err != nil {
				return err
			}
			if err := audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: audit.ActorSystem, Action: "notice.sent", WaveID: &waveID, AccountIDs: accs,
				Details: map[string]any{"channel": provisioning.ChannelLetter, "batch_id": batchID, "department": department,
					"count": n, "printed_deadline": deadline.In(provisioning.Paris).Format(time.DateOnly)}}); err != nil {
				return err
			}
			committing = true
			return nil
		})
		if f != nil {
			if err != nil && committing && !refusedByServer(err) {
				// The commit was sent and its answer lost (connection cut,
				// failover, context cancelled): the batch may be committed.
				// Its staged files stay for the department's next render, or
				// the recovery, to publish or remove as letter_batch says.
				return total, fmt.Errorf("committing letter batch %s (its files are settled by the next render): %w",
					filepath.Base(f.File), err)
			}
			if err != nil {
				f.Discard()
				return total, err
			}
			if err := f.Publish(); err != nil {
				// Committed: the start-up recovery publishes it (RecoverLetterFiles).
				return total, fmt.Errorf("letter batch committed but not published: %w", err)
			}
		}
		if err != nil {
			return total, err
		}
		total += n
		if n < opts.BatchSize {
			return total, nil
		}
	}
}

// refusedByServer reports whether err is PostgreSQL's own answer that the
// statement, or the commit, was refused — rather than a connection that
// failed, or a server that went away, before the answer came.
func refusedByServer(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !provisioning.DatabaseUnavailable(err)
}

// BatchFiles lists every file the committed letter batches name, PDFs and
// manifests, for the start-up recovery of staged files.
func BatchFiles(ctx context.Context, db provisioning.DBTX) (map[string]bool, error) {
	rows, err := db.Query(ctx, `SELECT file FROM letter_batch UNION ALL SELECT manifest FROM letter_batch`)
	if err != nil {
		return nil, fmt.Errorf("listing letter batch files: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing letter batch files: %w", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// pendingLetters are the letters (n) still to render, of accounts (a) that
// still want them (a code re-sent or a curator's copy: once the account is
// notified, its deadline known); batch_id IS NULL matches
// notice_pending_letter_idx.
const pendingLetters = `notice n JOIN account a ON a.id = n.account_id
	WHERE n.channel = 'letter' AND n.batch_id IS NULL AND n.status = 'pending'
	  AND (a.state IN ('pending', 'notified', 'active') OR n.kind = 'change' AND a.state = 'opposed')
	  AND (n.kind NOT IN ('resend', 'copy') OR a.state = 'notified')`

// LetterBatchSize is the most letters a PDF holds by default.
const LetterBatchSize = 5000

// PendingLetters counts a wave's letters waiting to be rendered for one
// department, and says when the oldest of them was created.
func PendingLetters(ctx context.Context, db provisioning.DBTX, waveID int64, department string) (int, time.Time, error) {
	var n int
	var oldest *time.Time
	err := db.QueryRow(ctx, `SELECT count(*), min(n.created_at) FROM `+pendingLetters+` AND n.department = $2 AND a.wave_id = $1`,
		waveID, department).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("counting pending letters: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, *oldest, nil
}

// PendingLetterGroups lists, by wave, the departments with letters waiting to
// be rendered.
func PendingLetterGroups(ctx context.Context, db provisioning.DBTX) (map[int64][]string, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT a.wave_id, n.department FROM `+pendingLetters+`
		ORDER BY 1, 2`) // the order queueLetters uses: no deadlock between them
	if err != nil {
		return nil, fmt.Errorf("finding pending letters: %w", err)
	}
	defer rows.Close()
	out := map[int64][]string{}
	for rows.Next() {
		var w int64
		var d string
		if err := rows.Scan(&w, &d); err != nil {
			return nil, err
		}
		out[w] = append(out[w], d)
	}
	return out, rows.Err()
}
