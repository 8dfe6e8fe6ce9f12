package notify

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/jung-kurt/gofpdf"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/text/unicode/norm"
)

// The letters' fonts: Noto Sans (regular and bold) and Noto Sans Mono
// (notify/fonts, with their licence), embedded as UTF-8 TrueType. All three
// cover Latin with every European and Vietnamese diacritic (Latin Extended
// Additional included), Greek and Cyrillic, so that every name prints as
// written: Łukasz, Nguyễn, Şahin, Ştefan, Γιώργος.
//
//go:embed fonts/NotoSans-Regular.ttf
var fontSans []byte

//go:embed fonts/NotoSans-Bold.ttf
var fontSansBold []byte

//go:embed fonts/NotoSansMono-Regular.ttf
var fontMono []byte

// face is one font of the letters: its name and style in the PDF, and its
// character map, read once, to know which characters it can draw.
type face struct {
	family, style string
	data          []byte
	font          *sfnt.Font
	// low holds, for every character below lowRunes, whether the font has
	// it: looked up once, since every string a letter draws is checked.
	low [lowRunes / 64]uint64
	mu  sync.Mutex // guards buf, for the characters above
	buf sfnt.Buffer
}

// lowRunes covers Latin, Greek, Cyrillic and Latin Extended Additional.
const lowRunes = 0x2000

var (
	faceSans     = mustFace("NotoSans", "", fontSans)
	faceSansBold = mustFace("NotoSans", "B", fontSansBold)
	faceMono     = mustFace("NotoSansMono", "", fontMono)
	faces        = []*face{faceSans, faceSansBold, faceMono}
)

func mustFace(family, style string, data []byte) *face {
	f, err := sfnt.Parse(data)
	if err != nil {
		panic(fmt.Sprintf("notify: the embedded font %s %s does not parse: %v", family, style, err))
	}
	fc := &face{family: family, style: style, data: data, font: f}
	for r := rune(0); r < lowRunes; r++ {
		if fc.lookup(r) {
			fc.low[r/64] |= 1 << (r % 64)
		}
	}
	return fc
}

// covers reports whether the face has a glyph for r.
func (f *face) covers(r rune) bool {
	if r >= 0 && r < lowRunes {
		return f.low[r/64]&(1<<(r%64)) != 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookup(r)
}

// lookup reads the font's character map; callers hold mu (or own f).
func (f *face) lookup(r rune) bool {
	i, err := f.font.GlyphIndex(&f.buf, r)
	return err == nil && i != 0
}

// printable returns s as the face can draw it: composed (NFC), and any
// character without a glyph replaced by its base letter with as many of its
// accents as the face has as one precomposed glyph (Ễ becomes Ê, then E),
// a postal operator's transliteration, or by "?" when the face has not
// even the base letter. A letter never shows an empty box.
func (f *face) printable(s string) string {
	s = norm.NFC.String(s)
	if f.coversAll(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if f.covers(r) || unicode.IsSpace(r) {
			b.WriteRune(r)
			continue
		}
		b.WriteRune(f.nearest(r))
	}
	return b.String()
}

func (f *face) coversAll(s string) bool {
	for _, r := range s {
		if !f.covers(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// nearest is r's base letter with the most of its accents, in order, that
// still compose to one character the face has; "?" without a base letter.
func (f *face) nearest(r rune) rune {
	parts := []rune(norm.NFD.String(string(r)))
	if !f.covers(parts[0]) {
		return '?'
	}
	best := parts[0]
	for _, mark := range parts[1:] {
		c := []rune(norm.NFC.String(string(best) + string(mark)))
		if len(c) != 1 || !f.covers(c[0]) {
			break
		}
		best = c[0]
	}
	return best
}

// addFonts registers the faces in a new document. Each document gets its own
// copy of the font files: gofpdf rewrites composite glyphs (é, ñ, ş…) in
// place while subsetting, which on shared bytes made renders differ and race.
func addFonts(pdf *gofpdf.Fpdf) {
	for _, f := range faces {
		pdf.AddUTF8FontFromBytes(f.family, f.style, bytes.Clone(f.data))
	}
}

// page draws text in one face at a time, always through the face's
// printable form.
type page struct {
	pdf  *gofpdf.Fpdf
	face *face
	// drawn, when set, sees every string drawn and its face (tests).
	drawn func(f *face, s string)
}

func (p *page) font(f *face, size float64) {
	p.face = f
	p.pdf.SetFont(f.family, f.style, size)
}

func (p *page) text(s string) string {
	s = p.face.printable(s)
	if p.drawn != nil {
		p.drawn(p.face, s)
	}
	return s
}

// cell draws one line of text.
func (p *page) cell(w, h float64, s, border string, ln int, align string) {
	p.pdf.CellFormat(w, h, p.text(s), border, ln, align, false, 0, "")
}

// lines draws text wrapped to width w.
func (p *page) lines(w, h float64, s string) {
	p.pdf.MultiCell(w, h, p.text(s), "", "L", false)
}
