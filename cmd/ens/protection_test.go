package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/provisioning"
)

// An adult under tutelle is told through their representative, as a minor
// is; under curatelle the person is told and the curator gets a copy with
// the same code. A protection the registry cannot name, or one without a
// representative, is refused with its reason. (Before, guardian_nir was
// ignored for adults: a person under tutelle got the notice alone; then the
// curator of a person under curatelle got nothing.)
func TestProtectedAdultsToldThroughTheirRepresentative(t *testing.T) {
	sink := mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "protected.csv")
	os.WriteFile(reg, []byte(`nir,last_name,first_name,birth_date,email,address_line4,postcode,city,guardian_nir,protection
160057505600177,Martin,Paul,1960-05-10,tuteur@example.fr,1 rue de la Paix,75002,Paris,,
250037505600296,Martin,Jeanne,1950-03-02,jeanne@example.fr,1 rue de la Paix,75002,Paris,160057505600177,tutelle
155077505600361,Durand,Marc,1955-07-21,marc@example.fr,2 rue de la Paix,75002,Paris,160057505600177,Curatelle
248037505600495,Petit,Anne,1948-03-15,anne@example.fr,3 rue de la Paix,75002,Paris,160057505600177,sauvegarde
145097505600596,Leroy,Jean,1945-09-01,jean@example.fr,4 rue de la Paix,75002,Paris,,tutelle
262047505600704,Roux,Lucie,1962-04-03,,5 rue de la Paix,75002,Paris,,
158117505600870,Blanc,Yves,1958-11-12,yves@example.fr,6 rue de la Paix,75002,Paris,262047505600704,curatelle
`), 0o600)
	var imp struct {
		Accepted int64            `json:"accepted"`
		Reasons  map[string]int64 `json:"reasons"`
	}
	c.json(&imp, "registry", "import", reg, "--json")
	if imp.Accepted != 5 || imp.Reasons["protection_invalid"] != 1 || imp.Reasons["protected_without_guardian"] != 1 {
		t.Fatalf("import: %+v", imp)
	}
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatal(errs)
	}
	to := map[string]int{}
	var marcCode, copyCode, copySubject string
	for _, raw := range sink.Messages() {
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := mail.ParseAddress(m.Header.Get("To"))
		to[addr.Address]++
		subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		switch {
		case addr.Address == "marc@example.fr":
			marcCode = codeRe.FindString(string(raw))
		case strings.Contains(subject, "Marc Durand"):
			copyCode, copySubject = codeRe.FindString(string(raw)), subject
		}
	}
	// The tutor gets their own notice and Jeanne's; Marc, under curatelle,
	// his, and his curator (the same person) a copy with Marc's code.
	_, status, _ := c.run("wave", "status", "w")
	if to["tuteur@example.fr"] != 3 || to["jeanne@example.fr"] != 0 || to["marc@example.fr"] != 1 {
		t.Fatalf("notices by recipient: %v\n%s", to, status)
	}
	if marcCode == "" || copyCode != marcCode || !strings.Contains(copySubject, "curatelle") {
		t.Fatalf("the curator's copy: subject %q, code %q; Marc's code %q", copySubject, copyCode, marcCode)
	}
	// Jeanne's tutor is asked for Jeanne's birth date, by her name: she is
	// not a child. (Before: "la date de naissance de l'enfant".)
	var jeanne string
	for _, raw := range sink.Messages() {
		text, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		if strings.Contains(string(text), "représentant légal de Jeanne Martin") {
			jeanne = strings.Join(strings.Fields(string(text)), " ")
		}
	}
	if !strings.Contains(jeanne, "date de naissance de Jeanne Martin") || strings.Contains(jeanne, "enfant") {
		_, asked, _ := strings.Cut(jeanne, "Il vous sera demandé")
		t.Fatalf("the tutor's notice for Jeanne asks for: %.80q", asked)
	}
	// A curator without an email gets the copy by letter, with the code of
	// the person, who got theirs by email.
	var yvesCode string
	for _, raw := range sink.Messages() {
		if m, _ := mail.ReadMessage(bytes.NewReader(raw)); strings.Contains(m.Header.Get("To"), "yves@example.fr") {
			yvesCode = codeRe.FindString(string(raw))
		}
	}
	conn := c.db()
	var file string
	if err := conn.QueryRow(context.Background(), `SELECT b.file FROM letter_batch b JOIN notice n ON n.batch_id = b.id
		WHERE n.kind = 'copy' AND n.channel = 'letter'`).Scan(&file); err != nil {
		t.Fatalf("the curator's letter: %v", err)
	}
	text, err := exec.Command("pdftotext", "-layout", file, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(text)), " ")
	if yvesCode == "" || !strings.Contains(flat, yvesCode) || !strings.Contains(flat, "curateur ou curatrice de Yves Blanc") || !strings.Contains(flat, "ROUX") {
		t.Fatalf("the curator's letter (Yves's code %q):\n%s", yvesCode, text)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errs)
	}
}

// A curator's copy the relay refuses changes nothing for the person, who was
// told: the copy goes by letter to the curator's address, filed with the
// curator's department, or, without one, stays failed. (Before, the
// fallback looked for the person's address: a person told by email without
// a postal address became unreachable — never activated — because their
// curator's copy bounced, and a curator's letter was filed with the
// person's department.)
func TestCuratorsRefusedCopyChangesNothingForThePerson(t *testing.T) {
	sink := mailSink(t, mailsink.Options{})
	sink.SetRule(func(rcpt string) error {
		if strings.HasPrefix(rcpt, "refuse-") {
			return mailsink.Permanent
		}
		return nil
	})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "curatelle.csv")
	os.WriteFile(reg, []byte(`nir,last_name,first_name,birth_date,email,address_line4,postcode,city,guardian_nir,protection
262041305510162,Roux,Lucie,1962-04-03,refuse-lucie@example.fr,7 rue de Rome,13001,Marseille,,
158117505610273,Blanc,Yves,1958-11-12,yves@example.fr,6 rue de la Paix,75002,Paris,262041305510162,curatelle
261067505610386,Petit,Anne,1961-06-15,refuse-anne@example.fr,,,,,
157027505610473,Morel,Luc,1957-02-20,luc@example.fr,,,,261067505610386,curatelle
`), 0o600)
	if code, out, errs := c.run("registry", "import", reg); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatal(errs)
	}
	ctx := context.Background()
	conn := c.db()
	state := func(nir string) string {
		var s string
		if err := conn.QueryRow(ctx, `SELECT a.state FROM account a JOIN person p ON p.id = a.person_id WHERE p.nir = $1`, nir).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if yves, luc := state("158117505610273"), state("157027505610473"); yves != "notified" || luc != "notified" {
		t.Fatalf("after their curators' copies were refused: Yves %s, Luc %s; want both notified", yves, luc)
	}
	var dept, file string
	if err := conn.QueryRow(ctx, `SELECT n.department, coalesce(b.file, '') FROM notice n JOIN account a ON a.id = n.account_id
		JOIN person p ON p.id = a.person_id LEFT JOIN letter_batch b ON b.id = n.batch_id
		WHERE p.nir = '158117505610273' AND n.kind = 'copy' AND n.channel = 'letter'`).Scan(&dept, &file); err != nil {
		t.Fatalf("Yves's curator's letter: %v", err)
	}
	text, err := exec.Command("pdftotext", "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("Yves's curator's letter (department %s, file %q): %v", dept, file, err)
	}
	if flat := strings.Join(strings.Fields(string(text)), " "); dept != "13" || !strings.Contains(flat, "13001 MARSEILLE") ||
		!strings.Contains(flat, "curateur ou curatrice de Yves Blanc") {
		t.Fatalf("Yves's curator's letter, filed with department %s:\n%s", dept, text)
	}
	var lucLetters int
	var lucCopy string
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE n.channel = 'letter'), coalesce(max(n.status::text) FILTER (WHERE n.channel = 'email'), '')
		FROM notice n JOIN account a ON a.id = n.account_id JOIN person p ON p.id = a.person_id
		WHERE p.nir = '157027505610473' AND n.kind = 'copy'`).Scan(&lucLetters, &lucCopy); err != nil {
		t.Fatal(err)
	}
	if lucLetters != 0 || lucCopy != "failed" {
		t.Fatalf("Luc's curator, with no postal address: %d letters, copy email %q; want none and failed", lucLetters, lucCopy)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errs)
	}
}

// A curator's copy La Poste brings back says the curator's address is wrong,
// nothing about the person: told by their own letter, they stay notified and
// are not counted unreachable. (Before, a returned copy made the person
// unreachable — never activated — while their own letter was not yet
// acknowledged posted, and, after activation, was counted as a person never
// told.)
func TestReturnedCuratorsCopyLeavesThePersonNotified(t *testing.T) {
	mailSink(t, mailsink.Options{})
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	reg := filepath.Join(c.dir, "curatelle.csv")
	os.WriteFile(reg, []byte(`nir,last_name,first_name,birth_date,email,address_line4,postcode,city,guardian_nir,protection
270036912310575,Faure,Marie,1970-03-08,,8 rue de Lyon,69001,Lyon,,
159067505610637,Garnier,Paul,1959-06-21,,9 rue de la Paix,75002,Paris,270036912310575,curatelle
`), 0o600)
	for _, args := range [][]string{{"registry", "import", reg}, {"wave", "launch", "w"}, {"worker", "--until-idle"}} {
		if code, out, errs := c.run(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	ctx := context.Background()
	conn := c.db()
	today := time.Now().In(provisioning.Paris).Format(time.DateOnly)
	var batches []struct {
		File string `json:"file"`
	}
	c.json(&batches, "letters", "batches", "--wave", "w", "--json")
	for _, b := range batches {
		if code, out, errs := c.run("letters", "posted", filepath.Base(b.File), "--on", today, "--operator", "imprimeur"); code != 0 {
			t.Fatalf("letters posted: exit %d\n%s%s", code, out, errs)
		}
	}
	var copyID int64
	if err := conn.QueryRow(ctx, `SELECT id FROM notice WHERE kind = 'copy' AND channel = 'letter' AND status = 'sent'`).Scan(&copyID); err != nil {
		t.Fatalf("the curator's posted copy: %v", err)
	}
	returns := filepath.Join(c.dir, "returns.csv")
	os.WriteFile(returns, []byte(fmt.Sprintf("reference,returned_on,reason\nENS-%d,%s,destinataire inconnu\n", copyID, today)), 0o600)
	var res struct {
		Returned    int `json:"returned"`
		Unreachable int `json:"unreachable"`
	}
	c.json(&res, "letters", "returned", returns, "--json", "--operator", "la-poste")
	var state string
	if err := conn.QueryRow(ctx, `SELECT a.state FROM account a JOIN person p ON p.id = a.person_id WHERE p.nir = '159067505610637'`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if res.Returned != 1 || res.Unreachable != 0 || state != "notified" {
		t.Fatalf("after the curator's copy came back: %+v, Paul %s; want 1 returned, nobody unreachable, Paul notified", res, state)
	}
	if code, out, errs := c.run("reconcile", "w"); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errs)
	}
}
