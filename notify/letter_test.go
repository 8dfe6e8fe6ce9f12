package notify_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/notify"
)

// The characters a name or an address in the registry may hold and a
// letter must print: Latin with every diacritic (Vietnamese included),
// Greek, Cyrillic.
var nameBlocks = []*unicode.RangeTable{
	{R16: []unicode.Range16{{Lo: 0x00C0, Hi: 0x024F, Stride: 1}}}, // Latin-1 letters, Latin Extended-A and -B
	{R16: []unicode.Range16{{Lo: 0x1E00, Hi: 0x1EFF, Stride: 1}}}, // Latin Extended Additional (Vietnamese)
	{R16: []unicode.Range16{{Lo: 0x0386, Hi: 0x03CE, Stride: 1}}}, // Greek
	{R16: []unicode.Range16{{Lo: 0x0400, Hi: 0x045F, Stride: 1}}}, // Cyrillic
}

// Every font a letter uses has a glyph for every character it is asked to
// draw: checked against the fonts' own character maps, for every letter of
// the alphabets above and for every string of letters rendered for people
// of many languages — not through pdftotext, which reads the text even
// where the page shows empty boxes. (Before: the bold and mono fonts lacked
// Ễ and 73 other Vietnamese letters, and "NGUYỄN" printed as "NGUY□N".)
func TestLetterFontsHaveEveryGlyphOfEveryName(t *testing.T) {
	t.Parallel()
	fonts := notify.LetterFonts()
	for name, covers := range fonts {
		var missing []string
		for _, block := range nameBlocks {
			for _, r16 := range block.R16 {
				for r := rune(r16.Lo); r <= rune(r16.Hi); r++ {
					if unicode.IsLetter(r) && !covers(r) {
						missing = append(missing, fmt.Sprintf("%c U+%04X", r, r))
					}
				}
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s has no glyph for %d letters: %s", name, len(missing), strings.Join(missing[:min(len(missing), 12)], ", "))
		}
	}

	people := []struct{ first, last, line, city string }{
		{"Thị Ánh", "Nguyễn", "12 rue Phạm Ngũ Lão", "Hồ Chí Minh"},
		{"Đức Thắng", "Trương Ễ", "3 đường Lê Lợi", "Đà Nẵng"},
		{"Łukasz", "Wiśniewski", "3 ulica Świętego Ducha", "Kraków"},
		{"Çağlar", "Şahin-Öztürk", "5 İstiklal Caddesi", "İstanbul"},
		{"Ștefan", "Țărnă", "7 strada Mărășești", "Iași"},
		{"Γιώργος", "Παπαδόπουλος", "Οδός Ερμού 10", "Αθήνα"},
		{"Юлия", "Шевченко", "ул. Крещатик 22", "Київ"},
	}
	var ns []*notify.Notice
	for i, p := range people {
		for _, kind := range []notify.Kind{notify.KindOpposition, notify.KindExtension} {
			n := sample()
			n.ID, n.Kind, n.FirstName, n.LastName = int64(100+2*i+len(ns)%2), kind, p.first, p.last
			n.AddressLines = [4]string{"", "", p.line, ""}
			n.Postcode, n.City = "75011", p.city
			ns = append(ns, n)
		}
	}
	drawn, err := notify.RenderLettersDrawing(ns, time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC), fixtures.LetterInfo)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, d := range drawn {
		all.WriteString(d.Text + "\n")
		for _, r := range d.Text {
			if !unicode.IsSpace(r) && !fonts[d.Font](r) {
				t.Errorf("%q drawn in %s, which has no glyph for %c U+%04X", d.Text, d.Font, r, r)
			}
		}
	}
	for _, p := range people {
		for _, want := range []string{p.first, strings.ToUpper(p.last), p.line, strings.ToUpper(p.city)} {
			if !strings.Contains(all.String(), want) {
				t.Errorf("no letter drew %q as written", want)
			}
		}
	}
}

// A character no font has is replaced by its base letter, or by "?" — never
// drawn as an empty box.
func TestLetterNeverDrawsAnEmptyBox(t *testing.T) {
	t.Parallel()
	n := sample()
	n.FirstName, n.LastName = "Mẫn", "Lý 李"
	drawn, err := notify.RenderLettersDrawing([]*notify.Notice{n}, time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC), fixtures.LetterInfo)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range drawn {
		if strings.Contains(d.Text, "李") {
			t.Errorf("%q drawn in %s, which has no glyph for 李", d.Text, d.Font)
		}
		found = found || strings.Contains(d.Text, "Mẫn LÝ ?")
	}
	if !found {
		t.Error("the address block does not read \"Mẫn LÝ ?\"")
	}
}

// A name is never cut: the civility or the role stays, first names become
// initials first, then the surname takes a line of its own, split between
// words only when it is longer than a line. (Before: "M.-C. A.-S. É. DE LA
// ROCHEFOUCAULD-MON", the civility dropped and the surname cut.)
func TestNamesAreNeverCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		female      bool
		first, last string
		kind        notify.Kind
		guardian    bool
		want        []string
	}{
		{"holder with initials", false, "Marie-Christine Anne-Sophie Éléonore", "de La Rochefoucauld-Montmorency", notify.KindOpposition, false,
			[]string{"M. M.-C. A.-S. É.", "DE LA ROCHEFOUCAULD-MONTMORENCY"}},
		{"surname longer than a line", true, "Aïssatou", "Nkemdirim-Oluwaseun Abubakar-Tafawa Balewa", notify.KindOpposition, false,
			[]string{"MME Aïssatou", "NKEMDIRIM-OLUWASEUN ABUBAKAR-TAFAWA", "BALEWA"}},
		{"curator named as such", false, "Léa", "Martin", notify.KindCopy, true,
			[]string{"CURATEUR OU CURATRICE DE Léa MARTIN"}},
		{"curator, long name", false, "Jean-Baptiste", "Dupont-Aignan", notify.KindCopy, true,
			[]string{"CURATEUR OU CURATRICE DE Jean-Baptiste", "DUPONT-AIGNAN"}},
		{"curator, initials", false, "Jean-Baptiste", "Dupont", notify.KindCopy, true,
			[]string{"CURATEUR OU CURATRICE DE J.-B. DUPONT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := sample()
			n.Female, n.FirstName, n.LastName, n.Kind, n.ForGuardian = tc.female, tc.first, tc.last, tc.kind, tc.guardian
			got := n.AddressBlock()
			if !slices.Equal(got[:len(tc.want)], tc.want) {
				t.Errorf("recipient %q, want %q", got[:len(tc.want)], tc.want)
			}
			for _, l := range got {
				if utf8.RuneCountInString(l) > 38 {
					t.Errorf("line %q longer than 38", l)
				}
			}
			if _, err := notify.RenderLetters([]*notify.Notice{n}, time.Now(), fixtures.LetterInfo); err != nil {
				t.Errorf("rendering: %v", err)
			}
		})
	}
}

// Every letter that carries a code says how to refuse by post — to the
// configured address, "le cachet de la poste faisant foi" — and every
// letter says who processes the person's data, why, their rights and the
// data protection officer's contact (GDPR art. 13). An extension notice
// carries the code and every way to refuse. Without the address or the
// officer's contact, no letter is printed. (Before: a placeholder address
// "TSA 12345, 75000 PARIS", no postmark rule, no data-protection text, and
// extension letters without the code.)
func TestLettersTellHowToRefuseByPostAndWhoHoldsTheData(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Skip("pdftotext (poppler-utils) is not installed: run make deps")
	}
	info := notify.LetterInfo{RefusalAddress: "CPAM de Paris – Oppositions, 75948 PARIS CEDEX 19", DPOContact: "dpo-ens@example.org"}
	for _, kind := range []notify.Kind{notify.KindOpposition, notify.KindResend, notify.KindExtension, notify.KindCopy, notify.KindInformation} {
		t.Run(string(kind), func(t *testing.T) {
			n := sample()
			// The longest letter: a representative's, two address lines for the name, abroad.
			n.Kind, n.ForGuardian, n.Country = kind, true, "Belgique"
			n.FirstName, n.LastName = "Marie-Christine Anne-Sophie Éléonore", "de La Rochefoucauld-Montmorency"
			if kind == notify.KindInformation {
				n.Code = ""
			}
			b, err := notify.RenderLetters([]*notify.Notice{n}, time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC), info)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("pdftotext", "-enc", "UTF-8", "-", "-")
			cmd.Stdin = bytes.NewReader(b.PDF)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("pdftotext: %v", err)
			}
			text := strings.Join(strings.Fields(string(out)), " ")
			want := []string{"Le ministère chargé de la santé et la Caisse nationale de l'Assurance Maladie", "délégué à la protection des données : dpo-ens@example.org", "CNIL"}
			if kind != notify.KindInformation {
				want = append(want, "ABCD-EFGH-JKMN", "posté au plus tard le 15 mars 2027 (le cachet de la poste faisant foi)",
					"CPAM de Paris – Oppositions, 75948 PARIS CEDEX 19", "www.monespacesante.fr", "34 22")
			}
			for _, w := range want {
				if !strings.Contains(text, w) {
					t.Errorf("the letter lacks %q", w)
				}
			}
			if strings.Contains(text, "TSA 12345") {
				t.Error("the letter prints the placeholder address")
			}
		})
	}
	for _, missing := range []notify.LetterInfo{{DPOContact: "dpo@example.org"}, {RefusalAddress: "X, 75000 PARIS"}} {
		if _, err := notify.RenderLetters([]*notify.Notice{sample()}, time.Now(), missing); err == nil {
			t.Errorf("letters rendered without %+v's missing part", missing)
		}
	}
}

// A notice of a change says what changed and whom to call, by email and by
// letter, and carries no code.
func TestChangeNoticesSayWhatChanged(t *testing.T) {
	t.Parallel()
	for topic, want := range map[string]string{
		"opposition_withdrawn": "a été annulée",
		"activated_by_holder":  "a été activé avant la fin",
		"opposed_by_agent":     "enregistrée par un conseiller",
		"reinstated":           "a été rétabli",
		"came_of_age":          "Vous avez maintenant 18 ans",
	} {
		n := sample()
		n.Kind, n.Topic, n.Code = notify.KindChange, topic, ""
		e, err := notify.RenderEmail(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{e.Text, e.HTML} {
			if !strings.Contains(part, want) || !strings.Contains(part, "34 22") || strings.Contains(part, "ABCD") {
				t.Errorf("%s: the email does not say %q and whom to call:\n%s", topic, want, part)
			}
		}
		if _, err := notify.RenderLetters([]*notify.Notice{n}, time.Now(), fixtures.LetterInfo); err != nil {
			t.Errorf("%s: letter: %v", topic, err)
		}
	}
}
