package main

import (
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
)

// An adult under tutelle is told through their representative, as a minor
// is; under curatelle the person is told. A protection the registry cannot
// name, or one without a representative, is refused with its reason.
// (Before, guardian_nir was ignored for adults: a person under tutelle got
// the notice alone.)
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
`), 0o600)
	var imp struct {
		Accepted int64            `json:"accepted"`
		Reasons  map[string]int64 `json:"reasons"`
	}
	c.json(&imp, "registry", "import", reg, "--json")
	if imp.Accepted != 3 || imp.Reasons["protection_invalid"] != 1 || imp.Reasons["protected_without_guardian"] != 1 {
		t.Fatalf("import: %+v", imp)
	}
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("worker", "--until-idle"); code != 0 {
		t.Fatal(errs)
	}
	to := map[string]int{}
	for _, raw := range sink.Messages() {
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := mail.ParseAddress(m.Header.Get("To"))
		to[addr.Address]++
	}
	// The tutor gets their own notice and Jeanne's; Marc, under curatelle, his.
	_, status, _ := c.run("wave", "status", "w")
	if to["tuteur@example.fr"] != 2 || to["jeanne@example.fr"] != 0 || to["marc@example.fr"] != 1 {
		t.Fatalf("notices by recipient: %v\n%s", to, status)
	}
}
