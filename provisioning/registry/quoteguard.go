package registry

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// A registry record may span a few physical lines (a quoted field holding a
// line break) but not more: an opening quote left unclosed would otherwise
// make encoding/csv read every following line into one field — those rows
// silently lost, and the rest of the file held in memory. quoteGuard sits
// between the file and the CSV reader and lets a record span at most
// maxRecordLines lines and maxRecordBytes bytes; a record that does not
// close within them has its first line replaced by strayQuoteLine, which
// the CSV reader refuses on its own (a bare quote) so that line is rejected
// (column_count) with its number, and reading resumes at the next line.
// Line numbers are kept: the replacement is one line for one line.
type quoteGuard struct {
	r       *bufio.Reader
	pending [][]byte // lines of an open record, waiting for its closing quote
	out     []byte   // ready for the CSV reader
	err     error
}

const (
	maxRecordLines = 5
	maxRecordBytes = 64 << 10
)

// strayQuoteLine is a line encoding/csv refuses without reading further.
var strayQuoteLine = []byte("x\"\n")

func newQuoteGuard(r *bufio.Reader) *quoteGuard { return &quoteGuard{r: r} }

func (g *quoteGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		if g.err != nil {
			if len(g.pending) > 0 {
				// The file ended inside an open quoted field.
				g.resync()
				continue
			}
			return 0, g.err
		}
		g.step()
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// step reads one physical line and moves what is decided to out.
func (g *quoteGuard) step() {
	line, tooLong, err := g.readLine()
	if err != nil {
		g.err = err
	}
	if tooLong {
		// A line longer than a record may be: refused whole.
		g.pending = append(g.pending, []byte{'\n'})
		g.resync()
		return
	}
	if len(line) == 0 {
		return
	}
	if len(g.pending) == 0 && bytes.IndexByte(line, '"') < 0 {
		g.out = line // the common case: no quote, one line, one record
		return
	}
	g.pending = append(g.pending, append([]byte(nil), line...))
	g.settle()
}

// settle passes the pending lines on once they close their quotes, or
// gives up on the first one when they cannot within the limits.
func (g *quoteGuard) settle() {
	for len(g.pending) > 0 {
		closedAt, size := -1, 0
		open, bad := false, false
		for i, l := range g.pending {
			size += len(l)
			if open, bad = scanQuotes(l, open); bad || !open {
				closedAt = i
				break
			}
		}
		if bad && closedAt > 0 {
			g.resync() // the first line opened a quote that was never meant
			continue
		}
		if closedAt >= 0 {
			for _, l := range g.pending[:closedAt+1] {
				g.out = append(g.out, l...)
			}
			g.pending = g.pending[closedAt+1:]
			continue
		}
		if len(g.pending) < maxRecordLines && size <= maxRecordBytes {
			return // wait for the next line
		}
		g.resync()
	}
}

// resync refuses the first pending line and scans the others afresh.
func (g *quoteGuard) resync() {
	g.out = append(g.out, strayQuoteLine...)
	rest := g.pending[1:]
	g.pending = nil
	for _, l := range rest {
		if len(g.pending) == 0 && bytes.IndexByte(l, '"') < 0 {
			g.out = append(g.out, l...)
			continue
		}
		g.pending = append(g.pending, l)
		if g.err == nil {
			g.settle()
		}
	}
	if g.err != nil && len(g.pending) > 0 {
		// At the end of the file nothing more can close them.
		g.settle()
		if len(g.pending) > 0 {
			g.resync()
		}
	}
}

// scanQuotes follows RFC 4180 quoting through one line, starting inside an
// open quoted field or not, and reports whether a quoted field is still
// open at the end of it, and whether the line broke the rules (a closing
// quote followed by something else than a comma or the line end: the quote
// that opened it was a stray one). A quote inside an unquoted field opens
// nothing (encoding/csv refuses that line by itself).
func scanQuotes(line []byte, open bool) (stillOpen, bad bool) {
	atFieldStart := !open
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case open:
			if c == '"' {
				if i+1 < len(line) && line[i+1] == '"' {
					i++ // an escaped quote
				} else {
					open = false
					if i+1 < len(line) && line[i+1] != ',' && line[i+1] != '\r' && line[i+1] != '\n' {
						return false, true
					}
				}
			}
		case c == '"' && atFieldStart:
			open = true
		case c == ',':
			atFieldStart = true
			continue
		}
		atFieldStart = false
	}
	return open, false
}

// readLine returns the next physical line with its line end (added to a
// last line without one), or tooLong for a line longer than maxRecordBytes
// (skipped up to its end).
func (g *quoteGuard) readLine() (line []byte, tooLong bool, err error) {
	part, err := g.r.ReadSlice('\n')
	line = append([]byte(nil), part...)
	for errors.Is(err, bufio.ErrBufferFull) {
		part, err = g.r.ReadSlice('\n')
		if len(line) <= maxRecordBytes {
			line = append(line, part...)
		}
	}
	if len(line) > maxRecordBytes {
		return nil, true, err
	}
	if len(line) > 0 && line[len(line)-1] != '\n' && errors.Is(err, io.EOF) {
		line = append(line, '\n')
	}
	return line, false, err
}
