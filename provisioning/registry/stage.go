package registry

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/ens-sante/ens/provisioning"
)

// stageSource is the body of the COPY into the staging table, in
// PostgreSQL's text format. Three kinds of work run at once: a reader
// goroutine cuts the file into numbered batches of records; validator
// goroutines check them (SPEC §1) and encode them as COPY lines; and Read,
// called by the COPY, takes the batches back in file order to do what must
// follow that order: the figures, the rejects file and the duplicate filter.
// Memory is bounded by the batches in flight.
type stageSource struct {
	r        *csv.Reader // a fresh slice per record (ReuseRecord off)
	h        *Header
	today    time.Time
	res      *ImportResult
	rejects  *rejectsWriter
	progress func(int64)
	seen     *bloom.BloomFilter // NIRs read so far, to flag possible duplicates

	order   chan chan stageBatch // one per batch, in file order
	stop    chan struct{}
	workers sync.WaitGroup
	started bool

	// mu is held by Read and drain: pgconn may return from a failed COPY
	// before its reading goroutine has left Read.
	mu      sync.Mutex
	cur     []stagedRow
	next    int
	line    int64  // of the last row handed to the COPY
	scratch []byte // scratch for the current line
	pending []byte // the part of the current line not yet read
	err     error
}

// rawRecord is one record as read; rec is nil when its quoting is broken.
type rawRecord struct {
	line int64
	rec  []string
}

// stagedRow is a validated record: its COPY line without the final
// maybe_dup column (which depends on the rows before it), or why it is
// rejected.
type stagedRow struct {
	line     int64
	text     []byte
	nir      string
	warnings []string
	reject   RejectReason
	rec      []string // rejected rows, for the rejects file
}

type stageBatch struct {
	rows []stagedRow
	err  error
}

type stageWork struct {
	recs []rawRecord
	out  chan stageBatch
}

const (
	stageBatchSize = 2048
	stageInFlight  = 16 // batches read ahead of the COPY
)

func (s *stageSource) start() {
	s.started = true
	s.order = make(chan chan stageBatch, stageInFlight)
	s.stop = make(chan struct{})
	work := make(chan stageWork, stageInFlight)
	for range max(1, runtime.GOMAXPROCS(0)) {
		s.workers.Go(func() {
			for w := range work {
				w.out <- s.validate(w.recs)
			}
		})
	}
	s.workers.Go(func() { s.read(work) })
}

// read runs in its own goroutine and alone touches the CSV reader.
func (s *stageSource) read(work chan<- stageWork) {
	defer close(s.order)
	defer close(work)
	send := func(w stageWork) bool {
		select {
		case s.order <- w.out:
		case <-s.stop:
			return false
		}
		if w.recs != nil {
			work <- w
		}
		return true
	}
	recs := make([]rawRecord, 0, stageBatchSize)
	for {
		rec, err := s.r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			// Broken quoting: the fields cannot be told apart.
			recs = append(recs, rawRecord{line: int64(pe.StartLine)})
		case err != nil:
			failed := make(chan stageBatch, 1)
			failed <- stageBatch{err: fmt.Errorf("reading registry file: %w", err)}
			send(stageWork{out: failed})
			return
		default:
			line, _ := s.r.FieldPos(0)
			recs = append(recs, rawRecord{line: int64(line), rec: rec})
		}
		if len(recs) == stageBatchSize {
			if !send(stageWork{recs: recs, out: make(chan stageBatch, 1)}) {
				return
			}
			recs = make([]rawRecord, 0, stageBatchSize)
		}
	}
	if len(recs) > 0 {
		send(stageWork{recs: recs, out: make(chan stageBatch, 1)})
	}
}

// validate turns records into staged rows; it touches nothing shared.
func (s *stageSource) validate(recs []rawRecord) stageBatch {
	rows := make([]stagedRow, len(recs))
	buf := make([]byte, 0, 160*len(recs))
	for i, raw := range recs {
		row := &rows[i]
		row.line = raw.line
		start := len(buf)
		var r RowResult
		if raw.rec == nil {
			r.Reject = RejectColumnCount
		} else {
			r = s.h.ValidateRow(raw.rec, s.today)
		}
		row.warnings = r.Warnings
		if r.Reject != "" {
			row.reject, row.rec = r.Reject, raw.rec
			// Rows rejected after their NIR was read keep it for duplicate
			// detection (the first appearance wins, whatever became of it).
			if n, err := provisioning.ParseNIR(r.RawNIR); err == nil {
				row.nir = string(n)
			}
			buf = strconv.AppendInt(buf, row.line, 10)
			buf = copyText(buf, string(r.Reject))
			buf = copyText(buf, provisioning.MaskNIR(r.RawNIR))
			buf = copyText(buf, row.nir)
			buf = append(buf, rejectedHead...)
			if d := s.h.departmentOf(raw.rec); d != "" {
				buf = copyText(buf, d)
			} else {
				buf = append(buf, "\t\\N"...)
			}
			buf = append(buf, rejectedTail...)
			row.text = buf[start:]
			continue
		}
		p := &r.Person
		row.nir = string(p.NIR)
		buf = strconv.AppendInt(buf, row.line, 10)
		buf = append(buf, "\t\\N\t"...) // no reason, an empty masked NIR
		buf = copyText(buf, row.nir)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(p.NIR.Sex()), 10)
		for _, v := range []string{p.LastName, p.FirstName} {
			buf = copyText(buf, v)
		}
		buf = append(buf, '\t')
		buf = p.BirthDate.AppendFormat(buf, time.DateOnly)
		for _, v := range []string{p.Email, p.AddressLines[0], p.AddressLines[1], p.AddressLines[2], p.AddressLines[3],
			p.Postcode, p.City, p.Country, p.GuardianNIR} {
			buf = copyText(buf, v)
		}
		if p.DeathDate != nil {
			buf = append(buf, '\t')
			buf = p.DeathDate.AppendFormat(buf, time.DateOnly)
		} else {
			buf = append(buf, "\t\\N"...)
		}
		buf = copyText(buf, p.Department)
		buf = copyText(buf, p.Protection)
		buf = copyText(buf, p.Caisse)
		buf = copyText(buf, p.ReplacesNIR)
		row.text = buf[start:]
	}
	return stageBatch{rows: rows}
}

// rejectedHead and rejectedTail are a rejected row's columns after its
// NIR, before and after its department: all NULL.
var (
	rejectedHead = strings.Repeat("\t\\N", 14)
	rejectedTail = strings.Repeat("\t\\N", 3)
)

// copyText appends a tab and s as a COPY text field: "" is NULL, and the
// backslash and the characters that end a field or a line are escaped.
func copyText(b []byte, s string) []byte {
	b = append(b, '\t')
	if s == "" {
		return append(b, `\N`...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// Read is the COPY's input: the staged rows in file order, each counted,
// written to the rejects file if rejected, and flagged when the filter may
// have seen its NIR before.
func (s *stageSource) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(p) {
		if len(s.pending) == 0 {
			row, err := s.nextRow()
			if err != nil {
				if n > 0 && errors.Is(err, io.EOF) {
					return n, nil
				}
				return n, err
			}
			dup := "\tf\n"
			if row.nir != "" && s.seen.TestOrAddString(row.nir) {
				dup = "\tt\n"
			}
			s.scratch = append(append(s.scratch[:0], row.text...), dup...)
			s.pending = s.scratch
		}
		c := copy(p[n:], s.pending)
		n += c
		s.pending = s.pending[c:]
	}
	return n, nil
}

// nextRow takes the next row in file order and accounts for it.
func (s *stageSource) nextRow() (*stagedRow, error) {
	if !s.started {
		s.start()
	}
	for s.next >= len(s.cur) {
		out, ok := <-s.order
		if !ok {
			return nil, io.EOF
		}
		b := <-out
		if b.err != nil {
			s.err = b.err
			return nil, b.err
		}
		s.cur, s.next = b.rows, 0
	}
	row := &s.cur[s.next]
	s.next++
	s.line = row.line
	res := s.res
	res.Read++
	if s.progress != nil && res.Read%50_000 == 0 {
		s.progress(res.Read)
	}
	for _, w := range row.warnings {
		res.Warnings[w]++
	}
	if row.reject == "" {
		res.Accepted++
		return row, nil
	}
	res.Rejected++
	res.Reasons[string(row.reject)]++
	if err := s.rejects.writeRecord(row.line, row.reject, s.h, row.rec); err != nil {
		s.err = err
		return nil, err
	}
	return row, nil
}

// drain stops the reader and the validators after a failed COPY. The COPY
// has returned by then, so nothing else touches the figures or the rejects
// file.
func (s *stageSource) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		close(s.stop)
		for range s.order {
		}
		s.workers.Wait()
	}
}
