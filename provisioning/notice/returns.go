package notice

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/audit"
)

// FileLineError is a line of an acknowledgements or returns file that was
// refused, with why.
type FileLineError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// csvColumns reads the header of a small operator file and returns the
// index of each column, refusing unknown or missing ones.
func csvColumns(r *csv.Reader, required, optional []string) (map[string]int, error) {
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, c := range append(append([]string{}, required...), optional...) {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("unknown column %q (expected %s)", h, strings.Join(append(append([]string{}, required...), optional...), ", "))
		}
		cols[h] = i
	}
	for _, c := range required {
		if _, ok := cols[c]; !ok {
			return nil, fmt.Errorf("missing column %q", c)
		}
	}
	return cols, nil
}

// eachRecord calls fn with each record of r after its header, with its
// line number; a record that does not parse is reported through bad.
func eachRecord(r io.Reader, required, optional []string, fn func(line int, get func(string) string) error, bad func(FileLineError)) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cols, err := csvColumns(cr, required, optional)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad(FileLineError{Line: pe.Line, Reason: "malformed CSV"})
				continue
			}
			return err
		}
		if len(rec) != len(cols) {
			bad(FileLineError{Line: line, Reason: "column_count"})
			continue
		}
		get := func(c string) string {
			if i, ok := cols[c]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if err := fn(line, get); err != nil {
			return err
		}
	}
}

// AcksResult is what a file of acknowledgements changed.
type AcksResult struct {
	Lines    int             `json:"lines"`
	Batches  int             `json:"batches_acknowledged"`
	Already  int             `json:"already_acknowledged"`
	Letters  int             `json:"letters_sent"`
	Rejected []FileLineError `json:"rejected"`
}

// AcknowledgeFile records every line of a printer's acknowledgements file
// (see above); a refused line is listed with its reason, the others count.
func AcknowledgeFile(ctx context.Context, st *provisioning.Store, r io.Reader, opts PostingOptions) (*AcksResult, error) {
	res := &AcksResult{Rejected: []FileLineError{}}
	err := eachRecord(r, []string{"batch", "posted_on"}, []string{"sha256"}, func(line int, get func(string) string) error {
		res.Lines++
		day, err := time.Parse(time.DateOnly, get("posted_on"))
		if err != nil {
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: "posted_on: expected YYYY-MM-DD"})
			return nil
		}
		p, err := AcknowledgePosting(ctx, st, get("batch"), day, strings.ToLower(get("sha256")), opts)
		switch {
		case errors.Is(err, provisioning.ErrNotFound):
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: "unknown batch"})
		case errors.Is(err, ErrPostingDate):
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: err.Error()})
		case err != nil:
			return fmt.Errorf("acknowledgements line %d: %w", line, err)
		case p.Already:
			res.Already++
		default:
			res.Batches++
			res.Letters += p.Letters
		}
		return nil
	}, func(e FileLineError) { res.Lines++; res.Rejected = append(res.Rejected, e) })
	return res, err
}

// ReturnsResult is what a file of returned letters changed.
type ReturnsResult struct {
	Lines int `json:"lines"`
	// Returned: letters recorded as returned by this file (a line read
	// again changes nothing).
	Returned int `json:"returned"`
	// Unreachable: people with no deliverable channel left, for the call
	// centre; never activated until a new address re-notifies them.
	Unreachable int `json:"unreachable"`
	// AfterActivation: letters returned for accounts already active — the
	// person was never told; listed in the report for the call centre.
	AfterActivation int             `json:"returned_after_activation"`
	Rejected        []FileLineError `json:"rejected"`
}

// RecordReturns records a file of letters La Poste brought back (see above).
func RecordReturns(ctx context.Context, st *provisioning.Store, r io.Reader, actor string) (*ReturnsResult, error) {
	res := &ReturnsResult{Rejected: []FileLineError{}}
	err := eachRecord(r, []string{"reference", "returned_on"}, []string{"reason"}, func(line int, get func(string) string) error {
		res.Lines++
		id, err := strconv.ParseInt(strings.TrimPrefix(strings.ToUpper(get("reference")), "ENS-"), 10, 64)
		if err != nil {
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: "reference: expected ENS- and digits"})
			return nil
		}
		day, err := time.Parse(time.DateOnly, get("returned_on"))
		if err != nil || provisioning.Day(day).After(provisioning.Day(st.Clock.Now())) {
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: "returned_on: expected YYYY-MM-DD, not in the future"})
			return nil
		}
		outcome, err := recordReturn(ctx, st, id, day, get("reason"), actor)
		switch {
		case errors.Is(err, provisioning.ErrNotFound):
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: "no posted or printed letter has this reference"})
		case errors.Is(err, errNeverPosted), errors.Is(err, errReturnedBeforePosting):
			res.Rejected = append(res.Rejected, FileLineError{Line: line, Reason: err.Error()})
		case err != nil:
			return fmt.Errorf("returns line %d: %w", line, err)
		case outcome == "":
		case outcome == copyReturned:
			res.Returned++
		default:
			res.Returned++
			switch outcome {
			case provisioning.StateUnreachable:
				res.Unreachable++
			case provisioning.StateActive:
				res.AfterActivation++
			case unreachableAfterActivation:
				res.AfterActivation++
				res.Unreachable++
			}
		}
		return nil
	}, func(e FileLineError) { res.Lines++; res.Rejected = append(res.Rejected, e) })
	return res, err
}

// copyReturned is recordReturn's outcome for a curator's copy: it tells
// that the curator's address is wrong, nothing about the person, who was
// told by their own notice.
const copyReturned provisioning.State = "copy returned"

// unreachableAfterActivation is recordReturn's outcome for a letter returned
// after the window activated its person: never told, they are unreachable
// again.
const unreachableAfterActivation provisioning.State = "unreachable after activation"

// A return that cannot be true is refused with its line.
var (
	errNeverPosted           = errors.New("this letter was never posted: it cannot have come back")
	errReturnedBeforePosting = errors.New("returned_on is before the letter's posting day")
)

// recordReturn marks one letter returned and its account unreachable when
// no other channel of its round reached the person; it returns the
// account's state afterwards, copyReturned for a curator's copy (the
// account untouched), or "" when the return was already recorded.
func recordReturn(ctx context.Context, st *provisioning.Store, noticeID int64, day time.Time, reason, actor string) (provisioning.State, error) {
	var state provisioning.State
	err := pgx.BeginFunc(ctx, st.Pool, func(tx pgx.Tx) error {
		var acc, waveID int64
		var status, kind string
		var postedOn *time.Time
		var byHolder bool
		err := tx.QueryRow(ctx, `SELECT n.account_id, a.wave_id, n.status, n.kind, a.state, b.posted_on, a.activated_by_holder
			FROM notice n JOIN account a ON a.id = n.account_id LEFT JOIN letter_batch b ON b.id = n.batch_id
			WHERE n.id = $1 AND n.channel = 'letter' AND n.status IN ('printed', 'sent', 'returned') FOR UPDATE OF n, a`, noticeID).
			Scan(&acc, &waveID, &status, &kind, &state, &postedOn, &byHolder)
		if err != nil {
			return provisioning.NotFound(err, "letter")
		}
		switch {
		case status == "returned":
			state = ""
			return nil
		case postedOn == nil:
			return errNeverPosted
		case day.Before(*postedOn):
			return errReturnedBeforePosting
		}
		now := st.Clock.Now()
		if _, err := tx.Exec(ctx, `UPDATE notice SET status = 'returned', returned_on = $2, error = left('returned: ' || $3, 200)
			WHERE id = $1`, noticeID, day.Format(time.DateOnly), reason); err != nil {
			return fmt.Errorf("recording a returned letter: %w", err)
		}
		// A curator's copy says nothing about the person, told by their own
		// notice, nor does the notice of a change; for the person's letter,
		// another notice of the round that reached them (an email accepted
		// and not reported failed) keeps them reachable.
		reached := kind == provisioning.NoticeCopy || kind == provisioning.NoticeChange
		if !reached {
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notice n JOIN account a ON a.id = n.account_id
				WHERE n.account_id = $1 AND n.seq = a.notice_round AND n.kind = 'opposition' AND n.status = 'sent')`, acc).Scan(&reached); err != nil {
				return fmt.Errorf("recording a returned letter: %w", err)
			}
		}
		switch {
		case reached:
		case state == provisioning.StateActive && !byHolder:
			// The window activated someone who was never told: unreachable
			// again, listed for the call centre.
			if err := markUnreachable(ctx, tx, st.AuditKey, unreachable{ids: []int64{acc}, reason: "letter returned after activation", now: now, active: true}); err != nil {
				return err
			}
			state = unreachableAfterActivation
		default:
			if err := markUnreachable(ctx, tx, st.AuditKey, unreachable{ids: []int64{acc}, reason: "letter returned", now: now}); err != nil {
				return err
			}
			if state == provisioning.StatePending || state == provisioning.StateNotified {
				state = provisioning.StateUnreachable
			}
		}
		if err := audit.Append(ctx, tx, st.AuditKey, now, audit.Event{Actor: actor, Action: "letter.returned", WaveID: &waveID, AccountIDs: []int64{acc},
			Details: map[string]any{"notice_id": noticeID, "kind": kind, "returned_on": day.Format(time.DateOnly), "account_state": string(state)}}); err != nil {
			return err
		}
		if kind == provisioning.NoticeCopy {
			state = copyReturned
		}
		return nil
	})
	return state, err
}
