package registry_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning/registry"
)

func TestImportRejectsEveryReason(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	file := "\ufeff" + testdb.RegistryHeader +
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\r\n" + // ok (CRLF)
		"\n" + // blank line, ignored
		"284052A32102552,Ñúñez,Gaëlle,1984-05-02,,\"3 rue de l'Église, bât. B\",20000,Ajaccio,,\n" + // ok, quoted comma
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n" + // duplicate_nir
		"255081416802539,Key,Bad,1955-08-12,a@example.fr,,,,,\n" + // nir_key
		"25508141680253,Short,Nir,1955-08-12,a@example.fr,,,,,\n" + // nir_format
		"284052B32102579,Mismatch,Year,1985-05-02,a@example.fr,,,,,\n" + // nir_birth_mismatch
		"295109912611193,Future,Born,2095-10-01,a@example.fr,,,,,\n" + // birth_date
		"184127512345640,No,Channel,1984-12-01,not-an-email,,,,,\n" + // no_channel + email_invalid warning
		"170017512345665,Too,Long,1970-01-01,,12 avenue du Maréchal de Lattre de Tassigny prolongée,75001,Paris,,\n" + // address_too_long
		"222017512345639,Young,Child,2022-01-15,,1 rue A,75001,Paris,,\n" + // minor_without_guardian
		"too,few,fields\n" + // column_count
		"184127512345640,Lef\xe8vre,Bad,1984-12-01,a@example.fr,,,,,\n" + // encoding
		"184127512345640,Nul\x00,Byte,1984-12-01,a@example.fr,,,,,\n" // encoding (NUL)
	res, err := registry.Import(context.Background(), testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	want := map[string]int64{"duplicate_nir": 1, "nir_key": 1, "nir_format": 1, "nir_birth_mismatch": 1,
		"birth_date": 1, "no_channel": 1, "address_too_long": 1, "minor_without_guardian": 1, "column_count": 1, "encoding": 2}
	for reason, n := range want {
		if res.Reasons[reason] != n {
			t.Errorf("reason %s: got %d, want %d (all: %v)", reason, res.Reasons[reason], n, res.Reasons)
		}
	}
	if res.Read != 13 || res.Accepted != 2 || res.Inserted != 2 || res.Rejected != 11 {
		t.Fatalf("figures: %+v", res)
	}
	if res.Warnings["email_invalid"] != 1 {
		t.Fatalf("warnings: %v", res.Warnings)
	}
	// Rejects are kept, masked, with their line numbers, and in a CSV that
	// re-imports as it is.
	var lines int
	var masked string
	if err := pool.QueryRow(context.Background(), `SELECT count(*), min(nir_masked) FILTER (WHERE reason = 'nir_key') FROM registry_reject`).Scan(&lines, &masked); err != nil {
		t.Fatal(err)
	}
	if lines != 11 || masked != "2 55 08 14 *** *** 39" {
		t.Fatalf("kept rejects: %d, masked %q", lines, masked)
	}
	rej, err := os.ReadFile(res.RejectsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(rej), "reject_line,reject_reason,nir,") || strings.Count(string(rej), "\n") != 12 {
		t.Fatalf("rejects file:\n%s", rej)
	}
	if fi, _ := os.Stat(res.RejectsFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("rejects file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := registry.Import(context.Background(), testdb.Store(pool), res.RejectsFile, registry.ImportOptions{RejectsPath: res.RejectsFile + ".2"})
	if err != nil {
		t.Fatalf("re-importing the rejects file: %v", err)
	}
	if again.Rejected != 10 || again.Reasons["duplicate_nir"] != 0 || again.Unchanged != 1 {
		t.Fatalf("re-import of uncorrected rejects: %+v", again)
	}
}

func TestImportRefusesBadHeader(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	for name, h := range map[string]string{
		"unknown column":  "nir,last_name,first_name,birth_date,shoe_size\n",
		"missing nir":     "last_name,first_name,birth_date\n",
		"repeated column": "nir,nir,last_name,first_name,birth_date\n",
		"no header row":   "255081416802538,Martin,Zoé,1955-08-12\n",
	} {
		_, err := registry.Import(context.Background(), testdb.Store(pool), testdb.WriteRegistry(t, h+"1,2,3,4,5\n"), registry.ImportOptions{})
		if !errors.Is(err, registry.ErrHeader) {
			t.Errorf("%s: err = %v, want ErrHeader", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "255081416802538") || strings.Contains(err.Error(), "Martin")) {
			t.Errorf("%s: the error shows personal data: %v", name, err)
		}
	}
	var n int
	pool.QueryRow(context.Background(), "SELECT count(*) FROM person").Scan(&n)
	if n != 0 {
		t.Fatalf("%d people imported from refused files", n)
	}
}

func TestImportTwiceChangesNothingAndLaterFileUpdates(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reg.csv")
	f, _ := os.Create(path)
	if err := fixtures.WriteRegistry(f, fixtures.RegistryOptions{Count: 3000, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	first, err := registry.Import(ctx, testdb.Store(pool), path, registry.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Inserted != first.Accepted || first.Rejected == 0 || len(first.Reasons) < 6 {
		t.Fatalf("first import: %+v", first)
	}
	second, err := registry.Import(ctx, testdb.Store(pool), path, registry.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Inserted != 0 || second.Updated != 0 || second.Unchanged != first.Accepted {
		t.Fatalf("second import changed things: %+v", second)
	}
	// A later file changes one person's email.
	upd := testdb.WriteRegistry(t, testdb.RegistryHeader+"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n")
	registry.Import(ctx, testdb.Store(pool), upd, registry.ImportOptions{})
	upd2 := testdb.WriteRegistry(t, testdb.RegistryHeader+"255081416802538,Martin,Zoé,1955-08-12,zoe.martin@example.fr,,,,,\n")
	res, err := registry.Import(ctx, testdb.Store(pool), upd2, registry.ImportOptions{})
	if err != nil || res.Updated != 1 || res.Inserted != 0 {
		t.Fatalf("update: %+v %v", res, err)
	}
}

func TestFixturesAreDeterministic(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	fixtures.WriteRegistry(&a, fixtures.RegistryOptions{Count: 500, Seed: 3})
	fixtures.WriteRegistry(&b, fixtures.RegistryOptions{Count: 500, Seed: 3})
	if a.String() != b.String() {
		t.Fatal("same seed, different files")
	}
	for _, d := range []string{",200", ",97"} { // Corsica and overseas postcodes appear
		if !strings.Contains(a.String(), d) {
			t.Errorf("no postcode starting %q in fixture", d)
		}
	}
}

// Every character a registry field may hold reaches the database as it was,
// and the first load leaves the NIR key in place.
func TestImportKeepsFieldsExactly(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	odd := `O\'Brien \N` + "\tTab"
	file := testdb.RegistryHeader + `255081416802538,"` + odd + `","Zoé` + "\r\n" + `Anne",1955-08-12,zoe@example.fr,,,,,` + "\n"
	res, err := registry.Import(ctx, testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{})
	if err != nil || res.Inserted != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
	var last, first string
	var email, postcode *string
	if err := pool.QueryRow(ctx, `SELECT last_name, first_name, email, postcode FROM person`).Scan(&last, &first, &email, &postcode); err != nil {
		t.Fatal(err)
	}
	// encoding/csv reads a quoted CRLF as LF.
	if last != odd || first != "Zoé\nAnne" || email == nil || *email != "zoe@example.fr" || postcode != nil {
		t.Fatalf("stored %q %q %v %v", last, first, email, postcode)
	}
	var keyed bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint
		WHERE conrelid = 'person'::regclass AND contype = 'u' AND conname = 'person_nir_key')`).Scan(&keyed); err != nil || !keyed {
		t.Fatalf("NIR key after the first load: %v %v", keyed, err)
	}
}

// A stray quote rejects its own record, with its line number, and nothing
// else: every physical line ends accepted or rejected. A quoted field may
// still hold a line break. (Before: the rows up to the next quote vanished
// — not counted as read, absent from the rejects file.)
func TestStrayQuoteLosesNoLine(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	var b strings.Builder
	b.WriteString(testdb.RegistryHeader)
	b.WriteString("255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n")   // line 2
	b.WriteString("284052A32102552,\"Ñúñez,Gaëlle,1984-05-02,g@example.fr,,,,,\n") // line 3: the stray quote
	for i := range 12 {
		nir := fixtures.ValidNIR(1, 70+i, 5, 75, 101+i)
		b.WriteString(nir + fmt.Sprintf(",Durand,Luc,19%02d-05-01,luc%02d@example.fr,,,,,\n", 70+i, i)) // lines 4-15
	}
	b.WriteString("295109912611193,Bordeaux,Jean,1995-10-01,,\"12 rue du Port\nBP 4\",33000,Bordeaux,,\n") // lines 16-17: a line break in a quoted field
	path := testdb.WriteRegistry(t, b.String())
	res, err := registry.Import(context.Background(), testdb.Store(pool), path, registry.ImportOptions{})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if res.Read != 15 || res.Accepted != 14 || res.Rejected != 1 || res.Reasons["column_count"] != 1 {
		t.Fatalf("figures: read %d, accepted %d, rejected %d (%v); want 15 records read, 14 accepted, 1 rejected",
			res.Read, res.Accepted, res.Rejected, res.Reasons)
	}
	rejects, _ := os.ReadFile(path + ".rejects.csv")
	if !strings.Contains(string(rejects), "\n3,column_count") {
		t.Fatalf("the stray quote's line 3 is not in the rejects file:\n%s", rejects)
	}
	// An unclosed quote at the end of the file rejects that line only.
	res, err = registry.Import(context.Background(), testdb.Store(pool), testdb.WriteRegistry(t, testdb.RegistryHeader+
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n\"284052A32102552,Ñúñez\n"), registry.ImportOptions{})
	if err != nil || res.Read != 2 || res.Rejected != 1 {
		t.Fatalf("an unclosed quote on the last line: %+v %v", res, err)
	}
}

// A NIR is read one way wherever it is written: spaces, dots, lower-case
// 2a/2b. A rejected row's NIR written with spaces still claims it, a
// guardian_nir written with spaces is kept, a death date in the future is
// refused. (Before: the second Gaëlle was accepted, the minor rejected
// minor_without_guardian, 2a refused, the future death accepted.)
func TestNIRReadOneWayEverywhere(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	file := testdb.RegistryHeader +
		"2 84 05 2a 321 025 52,Ñúñez,Gaëlle,1985-05-02,g@example.fr,,,,,\n" + // line 2: birth mismatch, NIR with spaces and 2a
		"284052A32102552,Ñúñez,Gaëlle,1984-05-02,g@example.fr,,,,,\n" + // line 3: the same NIR: duplicate_nir
		"2.84.05.2b.321.025.79,Corse,Anna,1984-05-02,anna@example.fr,,,,,\n" + // line 4: dots and 2b: accepted
		"222017512345639,Young,Child,2022-01-15,,1 rue A,75001,Paris,2 84 05 2B 321 025 79,\n" + // line 5: guardian with spaces
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,2099-01-01\n" // line 6: death in the future
	res, err := registry.Import(context.Background(), testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"nir_birth_mismatch": 1, "duplicate_nir": 1, "death_date": 1}
	for reason, n := range want {
		if res.Reasons[reason] != n {
			t.Errorf("%s: %d, want %d (all: %v)", reason, res.Reasons[reason], n, res.Reasons)
		}
	}
	if res.Accepted != 2 {
		t.Fatalf("accepted %d, want the Corsican and the child (%v)", res.Accepted, res.Reasons)
	}
	var guardian string
	pool.QueryRow(context.Background(), `SELECT coalesce(guardian_nir, '') FROM person WHERE first_name = 'Child'`).Scan(&guardian)
	if guardian != "284052B32102579" {
		t.Fatalf("guardian_nir stored as %q", guardian)
	}
}

// The rejects file, which operators open in a spreadsheet, never holds a
// cell a spreadsheet would run as a formula; corrected and re-imported, the
// values come back exactly. (Before: "=HYPERLINK(…)" was written as is.)
func TestRejectsFileNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	path := testdb.WriteRegistry(t, testdb.RegistryHeader+
		"255081416802538,\"=HYPERLINK(\"\"http://x\"\")\",+33 Zoé,1955-08-12,@zoe,-1 rue,,,,\n") // no_channel
	if _, err := registry.Import(context.Background(), testdb.Store(pool), path, registry.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	rej, _ := os.ReadFile(path + ".rejects.csv")
	for _, cell := range []string{"=HYPERLINK", "+33 Zoé", "@zoe", "-1 rue"} {
		if strings.Contains(string(rej), ","+cell) || strings.Contains(string(rej), ",\""+cell) {
			t.Errorf("the rejects file holds %q unneutralised:\n%s", cell, rej)
		}
		if !strings.Contains(string(rej), "'"+cell) {
			t.Errorf("the rejects file lacks '%s:\n%s", cell, rej)
		}
	}
	// The operator adds the missing postcode and city, as a spreadsheet
	// would save the file, and re-imports it.
	recs, err := csv.NewReader(strings.NewReader(string(rej))).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("rejects file: %v %q", err, recs)
	}
	for i, col := range recs[0] {
		switch col {
		case "postcode":
			recs[1][i] = "75001"
		case "city":
			recs[1][i] = "Paris"
		}
	}
	var fixed strings.Builder
	csv.NewWriter(&fixed).WriteAll(recs) //nolint:errcheck
	fixedPath := filepath.Join(t.TempDir(), "fixed.csv")
	os.WriteFile(fixedPath, []byte(fixed.String()), 0o600) //nolint:errcheck
	res, err := registry.Import(context.Background(), testdb.Store(pool), fixedPath, registry.ImportOptions{})
	if err != nil || res.Accepted != 1 {
		t.Fatalf("re-import: %+v %v\n%s", res, err, fixed.String())
	}
	var last, first string
	pool.QueryRow(context.Background(), `SELECT last_name, first_name FROM person`).Scan(&last, &first)
	if last != `=HYPERLINK("http://x")` || first != "+33 Zoé" {
		t.Fatalf("re-imported as %q %q", last, first)
	}
}

// The same NIR imported with another birth date is refused
// identity_conflict and changes nothing (before: "updated": 1, the birth
// date — half of the secret that lets someone refuse — overwritten); a name
// change is applied, audited and listed.
func TestIdentityChangesAreDecisionsNotUpdates(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	st := testdb.Store(pool)
	first := testdb.RegistryHeader + "255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n" +
		"284052A32102552,Ñúñez,Gaëlle,1984-05-02,g@example.fr,,,,,\n"
	if _, err := registry.Import(ctx, st, testdb.WriteRegistry(t, first), registry.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	later := testdb.RegistryHeader + "255081416802538,Martin,Zoé,1955-08-13,zoe@example.fr,,,,,\n" + // another birth date
		"284052A32102552,Ñúñez-Petit,Gaëlle,1984-05-02,g@example.fr,,,,,\n" // a new name
	res, err := registry.Import(ctx, st, testdb.WriteRegistry(t, later), registry.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reasons["identity_conflict"] != 1 || res.Updated != 1 || len(res.Renamed) != 1 || res.Renamed[0].Line != 3 {
		t.Fatalf("a later file with a birth date changed and a name changed: %+v", res)
	}
	if strings.Contains(res.Renamed[0].NIRMasked, "032102552") {
		t.Fatalf("the renamed person's NIR is listed in clear: %s", res.Renamed[0].NIRMasked)
	}
	var birth string
	var renamedEvents int
	if err := pool.QueryRow(ctx, `SELECT birth_date::text, (SELECT count(*) FROM audit_event WHERE action = 'person.renamed')
		FROM person WHERE nir = '255081416802538'`).Scan(&birth, &renamedEvents); err != nil {
		t.Fatal(err)
	}
	if birth != "1955-08-12" || renamedEvents != 1 {
		t.Fatalf("after the conflict: birth date %s, %d person.renamed events; want unchanged and one", birth, renamedEvents)
	}
}
