package registry

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzQuoteGuard: whatever the input, the guard keeps one output line per
// input line (so rejects keep their line numbers), never lets a record span
// more than maxRecordLines lines, and never panics.
func FuzzQuoteGuard(f *testing.F) {
	for _, s := range []string{"a,b\n\"c,d\ne,f\n", "\"\"\"\n\"\n", "a,\"b\nc\",d\n", "x\"y\n", "\"a\"b,c\n\"", strings.Repeat("\"\n", 12)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := io.ReadAll(newQuoteGuard(bufio.NewReaderSize(strings.NewReader(in), 16)))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Count(in, "\n")
		if len(in) > 0 && !strings.HasSuffix(in, "\n") {
			want++
		}
		if got := bytes.Count(out, []byte("\n")); got != want {
			t.Fatalf("%d lines in, %d out: %q → %q", want, got, in, out)
		}
		r := csv.NewReader(bytes.NewReader(out))
		r.FieldsPerRecord = -1
		for {
			_, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) && pe.Line-pe.StartLine >= maxRecordLines {
				t.Fatalf("a record spanned lines %d to %d", pe.StartLine, pe.Line)
			}
		}
	})
}
