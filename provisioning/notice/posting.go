package notice

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// DefaultPostingSLA is how long after its rendering a batch not acknowledged
// becomes overdue (ENS_POSTING_SLA).
const DefaultPostingSLA = 72 * time.Hour

// Batch states, as ens letters batches shows them.
const (
	BatchRendered = "rendered"
	BatchPosted   = "posted"
	BatchOverdue  = "overdue"
	// BatchWithdrawn: withdrawn before posting, its letters reprinted in
	// another batch; it must be destroyed, never posted.
	BatchWithdrawn = "withdrawn"
)

// LetterBatch is one PDF of letters as the printer's authoritative list
// shows it.
type LetterBatch struct {
	ID         int64      `json:"id"`
	Wave       string     `json:"wave"`
	Department string     `json:"department"`
	File       string     `json:"file"`
	Manifest   string     `json:"manifest"`
	SHA256     string     `json:"sha256"`
	Pages      int        `json:"pages"`
	RenderedAt time.Time  `json:"rendered_at"`
	State      string     `json:"state"`
	PostedOn   *time.Time `json:"posted_on"`
	PostedBy   string     `json:"posted_by,omitempty"`
	// FilesDeleted: the PDF was deleted after its retention (it held codes);
	// the manifest's name and the SHA-256 stay.
	FilesDeleted *time.Time `json:"files_deleted_at,omitempty"`
	// Withdrawn: when the batch was withdrawn for reprinting.
	Withdrawn *time.Time `json:"withdrawn_at,omitempty"`
	// PagesWithdrawn are the pages of a batch still to post whose letters
	// were withdrawn (their address changed): the printer pulls them.
	PagesWithdrawn []int32 `json:"pages_withdrawn,omitempty"`
}

// BatchFilter selects batches: a wave's (empty: all), in a state (empty: all).
type BatchFilter struct {
	Wave  string
	State string
	// SLA: batches unposted longer than this are overdue (default DefaultPostingSLA).
	SLA time.Duration
}

// ListLetterBatches is the printer's authoritative list of batches.
func ListLetterBatches(ctx context.Context, db provisioning.DBTX, f BatchFilter, now time.Time) ([]LetterBatch, error) {
	if f.SLA <= 0 {
		f.SLA = DefaultPostingSLA
	}
	switch f.State {
	case "", BatchRendered, BatchPosted, BatchOverdue, BatchWithdrawn:
	default:
		return nil, fmt.Errorf("state %q: expected rendered, posted, overdue or withdrawn", f.State)
	}
	rows, err := db.Query(ctx, `SELECT b.id, w.name, b.department, b.file, b.manifest, b.sha256, b.pages, b.rendered_at,
			CASE WHEN b.posted_on IS NOT NULL THEN 'posted' WHEN b.withdrawn_at IS NOT NULL THEN 'withdrawn'
			     WHEN b.rendered_at < $2::timestamptz - $3::interval THEN 'overdue' ELSE 'rendered' END,
			b.posted_on, coalesce(b.posted_by, ''), b.files_deleted_at, b.withdrawn_at,
			CASE WHEN b.withdrawn_at IS NULL THEN (SELECT array_agg(page ORDER BY page) FROM letter_withdrawal w WHERE w.batch_id = b.id) END
		FROM letter_batch b JOIN wave w ON w.id = b.wave_id
		WHERE ($1 = '' OR w.name = $1) ORDER BY b.id`, f.Wave, now, f.SLA)
	if err != nil {
		return nil, fmt.Errorf("listing letter batches: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LetterBatch, error) {
		var b LetterBatch
		err := row.Scan(&b.ID, &b.Wave, &b.Department, &b.File, &b.Manifest, &b.SHA256, &b.Pages, &b.RenderedAt,
			&b.State, &b.PostedOn, &b.PostedBy, &b.FilesDeleted, &b.Withdrawn, &b.PagesWithdrawn)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing letter batches: %w", err)
	}
	out := all[:0]
	for _, b := range all {
		// "rendered" lists every batch not yet posted, overdue ones included.
		if f.State == "" || b.State == f.State || (f.State == BatchRendered && b.State == BatchOverdue) {
			out = append(out, b)
		}
	}
	return out, nil
}

// PostingOptions configure the acknowledgement of a posting.
type PostingOptions struct {
	Operator string
	// Delivery is La Poste's delay by destination, the one the letters'
	// printed dates were rendered with (zero: none).
	Delivery provisioning.Delivery
}

// ErrPostingDate — a posting day in the future, before the batch was
// rendered, or other than the one already acknowledged; a posting too late
// for the dates the letters print; a batch withdrawn for reprinting.
var ErrPostingDate = errors.New("posting day refused")

// Posting is what an acknowledgement changed.
type Posting struct {
	BatchID  int64     `json:"batch_id"`
	File     string    `json:"file"`
	PostedOn time.Time `json:"posted_on"`
	Letters  int       `json:"letters"`
	// Already: the batch had been acknowledged with the same day; nothing changed.
	Already bool `json:"already_acknowledged"`
}

// AcknowledgePosting records that batch (its id, its PDF's or manifest's
// name or path) was handed to La Poste on postedOn (a calendar day), with the
// SHA-256 the printer computed when it is given: its letters become sent.
// A posting day from which delivery to the batch's destination and the
// window end after the date its letters print is refused: the person would
// read a date that leaves less than the window to refuse, or one already
// past; the batch must be reprinted (ReprintBatches). So is a batch
// withdrawn for reprinting. Idempotent for the same day; audited.
func AcknowledgePosting(ctx context.Context, st *provisioning.Store, batch string, postedOn time.Time, sha string, opts PostingOptions) (*Posting, error) {
	if opts.Operator == "" {
		return nil, errors.New("the operator acknowledging a posting must be named")
	}
	now := st.Clock.Now()
	var out *Posting
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		var b struct {
			id, waveID        int64
			file, hash, dept  string
			rendered          time.Time
			posted, withdrawn *time.Time
		}
		id, _ := strconv.ParseInt(batch, 10, 64)
		base := filepath.Base(batch)
		err := tx.QueryRow(ctx, `SELECT id, wave_id, file, sha256, department, rendered_at, posted_on, withdrawn_at FROM letter_batch
			WHERE id = $1 OR file = $2 OR manifest = $2 OR right(file, length($3) + 1) = '/' || $3
			   OR right(manifest, length($3) + 1) = '/' || $3
			ORDER BY id LIMIT 1 FOR UPDATE`, id, batch, base).Scan(&b.id, &b.waveID, &b.file, &b.hash, &b.dept, &b.rendered, &b.posted, &b.withdrawn)
		if err != nil {
			return provisioning.NotFound(err, "letter batch "+base)
		}
		if b.withdrawn != nil {
			return fmt.Errorf("%w: batch %d was withdrawn on %s and its letters reprinted in another batch: destroy it, never post it",
				ErrPostingDate, b.id, b.withdrawn.In(provisioning.Paris).Format(time.DateOnly))
		}
		if sha != "" && sha != b.hash {
			return fmt.Errorf("%w: batch %d: the printer's SHA-256 is not the batch's (a different file was printed)", ErrPostingDate, b.id)
		}
		// The calendar day in Paris of the given moment (a date parsed from
		// a file is midnight UTC: the same day).
		y, m, d := postedOn.In(provisioning.Paris).Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, provisioning.Paris)
		switch {
		case provisioning.Day(day).After(provisioning.Day(now)):
			return fmt.Errorf("%w: batch %d: %s is in the future", ErrPostingDate, b.id, day.Format(time.DateOnly))
		case provisioning.Day(day).Before(provisioning.Day(b.rendered)):
			return fmt.Errorf("%w: batch %d: %s is before its rendering (%s)", ErrPostingDate, b.id, day.Format(time.DateOnly),
				b.rendered.In(provisioning.Paris).Format(time.DateOnly))
		}
		out = &Posting{BatchID: b.id, File: b.file, PostedOn: day}
		if b.posted != nil {
			if !provisioning.Day(*b.posted).Equal(provisioning.Day(day)) {
				return fmt.Errorf("%w: batch %d was acknowledged as posted on %s", ErrPostingDate, b.id, b.posted.Format(time.DateOnly))
			}
			out.Already = true
			return nil
		}
		wave, err := provisioning.GetWaveByID(ctx, tx, b.waveID)
		if err != nil {
			return err
		}
		earliest := wave.Deadline(provisioning.AddDays(day, opts.Delivery.For(b.dept)))
		var printed *time.Time
		if err := tx.QueryRow(ctx, `SELECT min(deadline) FROM notice WHERE batch_id = $1 AND status = 'printed' AND kind = 'opposition'`,
			b.id).Scan(&printed); err != nil {
			return fmt.Errorf("reading the batch's printed dates: %w", err)
		}
		if printed != nil && printed.Before(earliest) {
			return fmt.Errorf("%w: batch %d: its letters print %s, but posted on %s they leave less than the window to refuse once delivered: reprint it (ens letters reprint %d)",
				ErrPostingDate, b.id, provisioning.FrenchDate(*printed), day.Format(time.DateOnly), b.id)
		}
		if _, err := tx.Exec(ctx, `UPDATE letter_batch SET posted_on = $2, posted_by = $3, acknowledged_at = $4 WHERE id = $1`,
			b.id, day.Format(time.DateOnly), opts.Operator, now); err != nil {
			return fmt.Errorf("recording the posting: %w", err)
		}
		var accs []int64
		err = tx.QueryRow(ctx, `WITH s AS (
				UPDATE notice SET status = 'sent', sent_at = $2,
					deadline = CASE WHEN kind = 'opposition' THEN greatest(deadline, $3) ELSE deadline END
				WHERE batch_id = $1 AND status = 'printed' RETURNING account_id, kind, deadline),
			-- An extension letter keeps the day the operator chose.
			a AS (UPDATE account a SET deadline = greatest(a.deadline, s.deadline)
				FROM s WHERE a.id = s.account_id AND s.kind = 'opposition' AND a.state IN ('notified', 'opposed')
				RETURNING a.id)
			SELECT coalesce(array_agg(account_id ORDER BY account_id), '{}') FROM s`, b.id, day, earliest).Scan(&accs)
		if err != nil {
			return fmt.Errorf("marking posted letters sent: %w", err)
		}
		out.Letters = len(accs)
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: opts.Operator, Action: "letters.posted", WaveID: &b.waveID, AccountIDs: accs,
			Details: map[string]any{"batch_id": b.id, "posted_on": day.Format(time.DateOnly), "letters": len(accs),
				"earliest_deadline": earliest.In(provisioning.Paris).Format(time.DateOnly)}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PostingStatus counts a wave's batches by state, and the accounts whose
// window has ended but who wait for their letter's posting.
type PostingStatus struct {
	Rendered int64 `json:"rendered"`
	Posted   int64 `json:"posted"`
	Overdue  int64 `json:"overdue"`
	// AwaitingPosting: notified accounts past their deadline that the sweep
	// will not activate until their letter is acknowledged as posted.
	AwaitingPosting int64 `json:"awaiting_posting"`
}

// GetPostingStatus reads a wave's posting status.
func GetPostingStatus(ctx context.Context, db provisioning.DBTX, waveID int64, sla time.Duration, now time.Time) (PostingStatus, error) {
	if sla <= 0 {
		sla = DefaultPostingSLA
	}
	var st PostingStatus
	err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE posted_on IS NULL AND rendered_at >= $2::timestamptz - $3::interval),
			count(*) FILTER (WHERE posted_on IS NOT NULL), count(*) FILTER (WHERE posted_on IS NULL AND rendered_at < $2::timestamptz - $3::interval)
		FROM letter_batch WHERE wave_id = $1 AND withdrawn_at IS NULL`, waveID, now, sla).Scan(&st.Rendered, &st.Posted, &st.Overdue)
	if err != nil {
		return st, fmt.Errorf("counting letter batches: %w", err)
	}
	err = db.QueryRow(ctx, `SELECT count(*) FROM account a WHERE a.wave_id = $1 AND a.state = 'notified' AND a.deadline < $2
		AND NOT (`+InformedProof+`)`, waveID, now).Scan(&st.AwaitingPosting)
	if err != nil {
		return st, fmt.Errorf("counting accounts awaiting their letter's posting: %w", err)
	}
	return st, nil
}

// InformedProof holds for an account (a) whose current notice round has
// reached its person: an opposition notice sent (an email the relay
// accepted and nobody reported failed, or a letter acknowledged as posted),
// and no fallback letter of that round still to print or post.
const InformedProof = `EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition'
		AND n.seq = a.notice_round AND n.status = 'sent')
	AND NOT EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition'
		AND n.seq = a.notice_round AND n.channel = 'letter' AND n.status IN ('pending', 'printed'))`

// DefaultLetterRetention is how long a posted batch's PDF is kept
// (ENS_LETTER_RETENTION): it holds codes, and the printer has it.
const DefaultLetterRetention = 30 * 24 * time.Hour

// ExpiredLetterFiles lists the PDFs not deleted yet, by batch id, of
// batches posted more than retention ago, and of batches never acknowledged
// more than retention after their posting SLA ran out (their codes must not
// lie on a disk for ever).
func ExpiredLetterFiles(ctx context.Context, db provisioning.DBTX, retention, sla time.Duration, now time.Time) (map[int64]string, error) {
	if retention <= 0 {
		retention = DefaultLetterRetention
	}
	if sla <= 0 {
		sla = DefaultPostingSLA
	}
	rows, err := db.Query(ctx, `SELECT id, file FROM letter_batch WHERE files_deleted_at IS NULL
		AND (withdrawn_at IS NOT NULL OR posted_on < ($1::timestamptz AT TIME ZONE 'Europe/Paris')::date - $2::interval
		     OR posted_on IS NULL AND rendered_at < $1::timestamptz - $3::interval - $2::interval) ORDER BY id`, now, retention, sla)
	if err != nil {
		return nil, fmt.Errorf("finding letter files past retention: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var f string
		if err := rows.Scan(&id, &f); err != nil {
			return nil, fmt.Errorf("finding letter files past retention: %w", err)
		}
		out[id] = f
	}
	return out, rows.Err()
}

// RecordLetterFilesDeleted records that batches' PDFs were deleted, with
// the audit event; their rows, manifests and SHA-256 stay.
func RecordLetterFilesDeleted(ctx context.Context, st *provisioning.Store, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		now := st.Clock.Now()
		var unposted []int64
		if err := tx.QueryRow(ctx, `WITH u AS (UPDATE letter_batch SET files_deleted_at = $2 WHERE id = ANY($1) RETURNING id, posted_on)
			SELECT coalesce(array_agg(id ORDER BY id) FILTER (WHERE posted_on IS NULL), '{}') FROM u`, ids, now).Scan(&unposted); err != nil {
			return fmt.Errorf("recording deleted letter files: %w", err)
		}
		details := map[string]any{"batch_ids": ids, "reason": "retention after posting"}
		if len(unposted) > 0 {
			details["never_acknowledged"] = unposted
			details["reason"] = "retention after posting, or after the posting SLA for batches never acknowledged"
		}
		return audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: audit.ActorSystem, Action: "letters.files_deleted", Details: details})
	})
}

// ToldAsAMinor holds for an account (a) of a person (p) who has come of
// age by $1 (a moment) since the opposition notice of the account's current
// round was made for their representative: they were told as a minor,
// through someone else, and have not been told themselves. A protected
// adult (tutelle) is still told through their representative.
const ToldAsAMinor = `p.guardian_nir IS NOT NULL AND coalesce(p.protection, '') <> 'tutelle'
	AND p.birth_date + interval '18 years' <= ($1::timestamptz AT TIME ZONE 'Europe/Paris')::date
	AND EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition' AND n.seq = a.notice_round
		AND (n.created_at AT TIME ZONE 'Europe/Paris')::date < p.birth_date + interval '18 years')`
