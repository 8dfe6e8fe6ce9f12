package notify_test

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
)

var testMailKey = bytes.Repeat([]byte{9}, 32)

func sample() *notify.Notice {
	return &notify.Notice{ID: 12, AccountID: 34, Kind: notify.KindOpposition, FirstName: "Gaëlle", LastName: "Ñúñez",
		Female: true, Code: "ABCD-EFGH-JKMN", Deadline: time.Date(2027, 3, 15, 23, 59, 59, 0, provisioning.Paris),
		Email: "g@example.fr", AddressLines: [4]string{"Appartement 3", "", "12 rue de l'Église", ""},
		Postcode: "75011", City: "Paris"}
}

func TestEmailStatesDeadlineAndHasNoLink(t *testing.T) {
	t.Parallel()
	e, err := notify.RenderEmail(sample())
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{e.Text, e.HTML} {
		for _, want := range []string{"jusqu'au 15 mars 2027 inclus", "ABCD-EFGH-JKMN", "Madame", "www.monespacesante.fr"} {
			if !strings.Contains(part, want) && !strings.Contains(part, strings.ReplaceAll(want, "'", "&#39;")) {
				t.Errorf("email lacks %q", want)
			}
		}
	}
	if strings.Contains(strings.ToLower(e.HTML), "<a ") || strings.Contains(strings.ToLower(e.HTML), "href") {
		t.Fatal("the HTML notice contains a link")
	}
	if !strings.Contains(e.Subject, "15 mars 2027") {
		t.Fatalf("subject %q", e.Subject)
	}
}

func TestAddressBlockFitsTheWindow(t *testing.T) {
	t.Parallel()
	n := sample()
	n.FirstName, n.LastName = "Marie-Christine-Éléonore", "de La Rochefoucauld"
	n.AddressLines = [4]string{"Appartement 3", "Résidence Les Érables", "12 rue de l'Église", "BP 45"}
	lines := n.AddressBlock()
	if len(lines) > 6 {
		t.Fatalf("%d lines, want ≤ 6", len(lines))
	}
	for _, l := range lines {
		if utf8.RuneCountInString(l) > 38 {
			t.Fatalf("line %q longer than 38", l)
		}
	}
	if last := lines[len(lines)-1]; last != "75011 PARIS" {
		t.Fatalf("last line %q", last)
	}
	n.Country = "Belgique"
	if l := n.AddressBlock(); l[len(l)-1] != "BELGIQUE" {
		t.Fatalf("abroad: %v", l)
	}
}

func TestLettersRenderToTheSameBytes(t *testing.T) {
	t.Parallel()
	at := time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC)
	a, err := notify.RenderLetters([]*notify.Notice{sample()}, at, fixtures.LetterInfo)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := notify.RenderLetters([]*notify.Notice{sample()}, at, fixtures.LetterInfo)
	if !bytes.Equal(a.PDF, b.PDF) || a.SHA256 != b.SHA256 {
		t.Fatal("the same batch rendered to different bytes")
	}
	if len(a.Manifest) != 1 || a.Manifest[0].Page != 1 || a.Manifest[0].NoticeID != 12 {
		t.Fatalf("manifest %+v", a.Manifest)
	}
}

// A worker checks its SMTP server before it takes any job: a wrong TLS
// setting or address is an error at start, naming the server and the cause.
func TestMailerCheckRefusesAServerItCannotUse(t *testing.T) {
	t.Parallel()
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx := context.Background()
	check := func(url string) error {
		m, err := notify.NewMailer(notify.SMTPConfig{URL: url, Timeout: 5 * time.Second, Key: testMailKey})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		return m.Check(ctx)
	}
	if err := check(sink.URL()); err != nil {
		t.Fatalf("check against the sink as it says to reach it: %v", err)
	}
	// The sink offers no STARTTLS; without tls=none, STARTTLS is required.
	plain := strings.TrimSuffix(sink.URL(), "?tls=none")
	if err := check(plain); err == nil || !strings.Contains(err.Error(), sink.Addr()) || !strings.Contains(strings.ToLower(err.Error()), "starttls") {
		t.Fatalf("STARTTLS required but not offered: got %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if err := check("smtp://" + closed + "?tls=none"); err == nil || !strings.Contains(err.Error(), closed) {
		t.Fatalf("nobody listening: got %v", err)
	}
}

// A representative's address line keeps the child's last name within the
// 38 characters of AFNOR NF Z10-011: a shorter salutation, then initials,
// then the surname on a line of its own — never cut, the role never lost.
// (Before: "M.-C. DE LA ROCHEFOUCAULD-MONTMORENCY", the representative gone.)
func TestGuardianLineKeepsTheChildsLastName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		first, last string
		want        []string
	}{
		{"Léa", "Martin", []string{"REPRÉSENTANT LÉGAL DE Léa MARTIN"}},
		{"Marie-Christine", "Dupont", []string{"REPR. LÉGAL DE Marie-Christine DUPONT"}},
		{"Marie-Christine Éléonore", "Dupont-Moretti", []string{"REPR. LÉGAL DE M.-C. É. DUPONT-MORETTI"}},
		{"Marie-Christine", "de La Rochefoucauld-Montmorency", []string{"REPRÉSENTANT LÉGAL DE Marie-Christine", "DE LA ROCHEFOUCAULD-MONTMORENCY"}},
	} {
		n := sample()
		n.ForGuardian, n.FirstName, n.LastName = true, tc.first, tc.last
		if got := n.AddressBlock()[:len(tc.want)]; !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: %q, want %q", tc.first, tc.last, got, tc.want)
		}
	}
	n := sample()
	n.FirstName, n.LastName = "Anne-Marie-Christine", "Delacroix-Beauharnais"
	if got := n.AddressBlock()[0]; got != "MME A.-M.-C. DELACROIX-BEAUHARNAIS" {
		t.Errorf("holder: %q", got)
	}
}

// Every name prints as written, whatever its alphabet: the text pdftotext
// extracts from the letter holds each one. (Before: cp1252 core fonts
// printed "M. .ukasz NGUY.N-.AHIN", "3 ulica .wi.tego Ducha".)
func TestLettersPrintEveryNameAsWritten(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Skip("pdftotext (poppler-utils) is not installed: run make deps")
	}
	people := []struct{ first, last, line, city string }{
		{"Łukasz", "Wiśniewski", "3 ulica Świętego Ducha", "Kraków"},
		{"Thị Ánh", "Nguyễn", "12 rue Phạm Ngũ Lão", "Paris"},
		{"Çağlar", "Şahin-Öztürk", "5 İstiklal Caddesi", "İstanbul"},
		{"Ștefan", "Țărnă", "7 strada Mărășești", "Iași"},
		{"Γιώργος", "Παπαδόπουλος", "Οδός Ερμού 10", "Αθήνα"},
	}
	var ns []*notify.Notice
	for i, p := range people {
		n := sample()
		n.ID, n.FirstName, n.LastName = int64(100+i), p.first, p.last
		n.AddressLines = [4]string{"", "", p.line, ""}
		n.Postcode, n.City = "75011", p.city
		ns = append(ns, n)
	}
	b, err := notify.RenderLetters(ns, time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC), fixtures.LetterInfo)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pdftotext", "-enc", "UTF-8", "-", "-")
	cmd.Stdin = bytes.NewReader(b.PDF)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	text := string(out)
	for _, p := range people {
		for _, want := range []string{p.first, strings.ToUpper(p.last), p.line, strings.ToUpper(p.city)} {
			if !strings.Contains(text, want) {
				t.Errorf("the letter lacks %q", want)
			}
		}
	}
}
