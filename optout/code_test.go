package optout_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ens-sante/ens/optout"
)

var key = optout.Key(bytes.Repeat([]byte{1}, 32))

func TestCodeIsStableAndWellFormed(t *testing.T) {
	t.Parallel()
	c := key.Derive(42)
	if c != key.Derive(42) {
		t.Fatal("the same account got two codes")
	}
	if c == key.Derive(43) {
		t.Fatal("two accounts share a code")
	}
	s := c.String()
	if len(s) != 14 || s[4] != '-' || s[9] != '-' {
		t.Fatalf("format %q, want XXXX-XXXX-XXXX", s)
	}
	other := optout.Key(bytes.Repeat([]byte{2}, 32))
	if other.Derive(42) == c {
		t.Fatal("the code does not depend on the key")
	}
}

func TestParseCodeIsForgiving(t *testing.T) {
	t.Parallel()
	c := key.Derive(7)
	s := string(c)
	variants := []string{c.String(), s, strings.ToLower(c.String()), " " + s[:4] + " " + s[4:8] + " - " + s[8:] + " ",
		strings.NewReplacer("0", "O", "1", "I").Replace(s)}
	for _, v := range variants {
		got, err := optout.ParseCode(v)
		if err != nil || got != c {
			t.Errorf("ParseCode(%q) = %q, %v; want %q", v, got, err, c)
		}
	}
}

func TestCheckSymbolCatchesEverySingleTypo(t *testing.T) {
	t.Parallel()
	swaps, caught := 0, 0
	for id := int64(1); id <= 200; id++ {
		c := []byte(key.Derive(id))
		for i := range c {
			orig := c[i]
			for _, r := range optout.Alphabet {
				if byte(r) == orig {
					continue
				}
				c[i] = byte(r)
				if _, err := optout.ParseCode(string(c)); !errors.Is(err, optout.ErrMistyped) {
					t.Fatalf("typo at %d (%c→%c) not caught: %v", i, orig, r, err)
				}
			}
			c[i] = orig
		}
		// Swapping two adjacent different symbols is caught almost always
		// (Luhn mod N misses a few pairs).
		for i := 0; i+1 < len(c); i++ {
			if c[i] == c[i+1] {
				continue
			}
			swaps++
			c[i], c[i+1] = c[i+1], c[i]
			if _, err := optout.ParseCode(string(c)); err != nil {
				caught++
			}
			c[i], c[i+1] = c[i+1], c[i]
		}
	}
	if rate := float64(caught) / float64(swaps); rate < 0.95 {
		t.Fatalf("only %.1f%% of adjacent transpositions caught", 100*rate)
	}
}

func TestParseCodeRejectsJunk(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "ABC", "ABCD-EFGH-JKMN-PQRS", "ABCD-EFGH-JKMU", "ÀBCD-EFGH-JKMN", strings.Repeat("A", 100)} {
		if _, err := optout.ParseCode(s); !errors.Is(err, optout.ErrMalformed) {
			t.Errorf("ParseCode(%q) = %v, want ErrMalformed", s, err)
		}
	}
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{string(key.Derive(1)), key.Derive(2).String(), "", "----", "oooo-iiii-llll", "\x00\xff", "ÀÉ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := optout.ParseCode(s)
		if err != nil {
			return
		}
		again, err := optout.ParseCode(c.String())
		if err != nil || again != c {
			t.Fatalf("a parsed code does not round-trip: %q → %q (%v)", s, c, err)
		}
	})
}
