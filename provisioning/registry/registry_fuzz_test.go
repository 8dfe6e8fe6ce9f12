package registry_test

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/registry"
)

// FuzzRegistryReader: whatever a registry file holds, the reader never
// panics; a row is either a person whose fields are valid UTF-8 without NUL
// (what PostgreSQL stores) or a rejection with a reason.
func FuzzRegistryReader(f *testing.F) {
	for _, s := range []string{
		"nir,last_name,first_name,birth_date\n184037512345678,Dupont,Jean,1984-03-15\n",
		"nir,last_name,first_name,birth_date,email,postcode,city,guardian_nir,death_date\n2550814168025xx,\"=cmd\",Ana,1955-08-12,a@b,75001,Paris,,\n",
		"nir,last_name,first_name,birth_date\n\xff\xfe,\x00,,\n",
		"nir\n1\n",
	} {
		f.Add(s)
	}
	today := time.Date(2026, 12, 2, 0, 0, 0, 0, provisioning.Paris)
	f.Fuzz(func(t *testing.T, file string) {
		r := csv.NewReader(strings.NewReader(file))
		r.FieldsPerRecord = -1
		head, err := r.Read()
		if err != nil {
			return
		}
		h, err := registry.ParseHeader(head)
		if err != nil {
			return
		}
		for {
			rec, err := r.Read()
			if err != nil {
				return
			}
			res := h.ValidateRow(rec, today)
			if res.Reject != "" {
				continue
			}
			p := res.Person
			for _, v := range []string{p.LastName, p.FirstName, p.Email, p.Postcode, p.City, p.Country, p.GuardianNIR, p.Department} {
				if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					t.Fatalf("accepted row with a field PostgreSQL cannot store: %q", v)
				}
			}
			if p.BirthDate.After(today) {
				t.Fatalf("accepted a birth date in the future: %v", p.BirthDate)
			}
		}
	})
}
