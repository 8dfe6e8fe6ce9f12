package registry

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ens-sante/ens/provisioning"
)

// RejectReason is the stable code given to a registry row that is not
// imported (SPEC §1). Operators and acceptance checks rely on these strings.
type RejectReason string

// The reject reasons of SPEC §1, plus death_date and name_missing (see README).
const (
	RejectColumnCount          RejectReason = "column_count"
	RejectEncoding             RejectReason = "encoding"
	RejectNIRFormat            RejectReason = "nir_format"
	RejectNIRKey               RejectReason = "nir_key"
	RejectNIRBirthMismatch     RejectReason = "nir_birth_mismatch"
	RejectBirthDate            RejectReason = "birth_date"
	RejectDuplicateNIR         RejectReason = "duplicate_nir"
	RejectNoChannel            RejectReason = "no_channel"
	RejectAddressTooLong       RejectReason = "address_too_long"
	RejectMinorWithoutGuardian RejectReason = "minor_without_guardian"
	// RejectDeathDate: an unparsable death date. Not in SPEC §1; a row whose
	// death cannot be read is neither notified nor silently kept alive.
	RejectDeathDate RejectReason = "death_date"
	// RejectNameMissing: an empty last or first name. Not in SPEC §1; a
	// notice cannot be addressed to nobody.
	RejectNameMissing RejectReason = "name_missing"
	// RejectProtection: a protection other than tutelle or curatelle.
	RejectProtection RejectReason = "protection_invalid"
	// RejectProtectedWithoutGuardian: an adult under protection whose
	// representative (guardian_nir) is not given.
	RejectProtectedWithoutGuardian RejectReason = "protected_without_guardian"
	// RejectIdentityConflict — the NIR is known with another birth date: an
	// identity change is a decision for an operator, never an update (the
	// birth date is half of what lets someone refuse).
	RejectIdentityConflict RejectReason = "identity_conflict"
	// RejectReplacesNIR — replaces_nir is not a valid NIR, or is the row's
	// own.
	RejectReplacesNIR RejectReason = "replaces_nir_invalid"
)

// Protections of an adult the registry may record (column protection).
const (
	ProtectionTutelle   = "tutelle"   // the representative is told, and acts
	ProtectionCuratelle = "curatelle" // the person is told, and acts, assisted
)

// WarningEmailInvalid is counted when an email is present but unusable; the
// row is kept and the email treated as absent.
const WarningEmailInvalid = "email_invalid"

// WarningCaisseInvalid is counted when a caisse is present but not three
// characters of an organisme's code (311, 2A1, 974); the row is kept and the
// caisse treated as absent.
const WarningCaisseInvalid = "caisse_invalid"

// MaxAddressLine is the AFNOR NF Z10-011 line length: a DL window holds 38
// characters a line.
const MaxAddressLine = 38

// Columns of the registry file. RequiredColumns must all appear.
var (
	RequiredColumns = []string{"nir", "last_name", "first_name", "birth_date"}
	OptionalColumns = []string{"email", "address_line2", "address_line3", "address_line4", "address_line5",
		"postcode", "city", "country", "guardian_nir", "death_date", "protection", "caisse", "replaces_nir"}
	// AnnotationColumns are written by the rejects CSV and ignored on import,
	// so that a corrected rejects file re-imports as it is.
	AnnotationColumns = []string{"reject_line", "reject_reason"}
)

// columnName is what a column name may look like in an error message.
var columnName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,31}$`)

// ErrHeader refuses a whole registry file.
var ErrHeader = errors.New("registry header refused")

// Header maps column names to their positions in a registry file.
type Header struct {
	Names []string
	pos   map[string]int
	col   columnIndex // the same positions, resolved once for ValidateRow
}

// columnIndex holds each known column's position, -1 when absent.
type columnIndex struct {
	nir, lastName, firstName, birthDate, email, postcode, city, country, guardianNIR, deathDate, protection, caisse, replacesNIR int
	addressLines                                                                                                                 [4]int
}

// ParseHeader validates the header row: every required column present, no
// unknown or repeated column.
func ParseHeader(fields []string) (*Header, error) {
	known := map[string]bool{}
	for _, c := range append(append(append([]string{}, RequiredColumns...), OptionalColumns...), AnnotationColumns...) {
		known[c] = true
	}
	h := &Header{Names: fields, pos: map[string]int{}}
	for i, f := range fields {
		name := strings.ToLower(strings.TrimSpace(f))
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		if !known[name] {
			// Echo the name only if it looks like one: a file without its
			// header row would otherwise put a NIR or a name in the message.
			what := fmt.Sprintf("column %d", i+1)
			if columnName.MatchString(name) {
				what = fmt.Sprintf("column %q", name)
			}
			return nil, fmt.Errorf("%w: unknown %s — is the header row missing? (known: %s)", ErrHeader, what,
				strings.Join(append(append([]string{}, RequiredColumns...), OptionalColumns...), ", "))
		}
		if _, dup := h.pos[name]; dup {
			return nil, fmt.Errorf("%w: column %q appears twice", ErrHeader, name)
		}
		h.pos[name] = i
	}
	for _, c := range RequiredColumns {
		if _, ok := h.pos[c]; !ok {
			return nil, fmt.Errorf("%w: required column %q is missing", ErrHeader, c)
		}
	}
	at := func(name string) int {
		if i, ok := h.pos[name]; ok {
			return i
		}
		return -1
	}
	h.col = columnIndex{nir: at("nir"), lastName: at("last_name"), firstName: at("first_name"), birthDate: at("birth_date"),
		email: at("email"), postcode: at("postcode"), city: at("city"), country: at("country"),
		guardianNIR: at("guardian_nir"), deathDate: at("death_date"), protection: at("protection"), caisse: at("caisse"), replacesNIR: at("replaces_nir")}
	for i := range h.col.addressLines {
		h.col.addressLines[i] = at(fmt.Sprintf("address_line%d", i+2))
	}
	return h, nil
}

// field is the trimmed value at position i of rec, "" for an absent column,
// without the quote the rejects file puts before a cell a spreadsheet would
// read as a formula (NeutraliseCell).
func field(rec []string, i int) string {
	if i < 0 {
		return ""
	}
	v := strings.TrimSpace(rec[i])
	if len(v) > 1 && v[0] == '\'' && strings.IndexByte(formulaStarts, v[1]) >= 0 {
		return v[1:]
	}
	return v
}

// formulaStarts are the first characters that make a spreadsheet read a
// cell as a formula (OWASP's list for CSV injection).
const formulaStarts = "=+-@\t\r"

// NeutraliseCell prefixes with a quote a cell a spreadsheet would read as a
// formula; the import strips it again, so a corrected rejects file
// re-imports as it is.
func NeutraliseCell(v string) string {
	if v != "" && strings.IndexByte(formulaStarts, v[0]) >= 0 {
		return "'" + v
	}
	return v
}

// Person is one accepted registry row.
type Person struct {
	NIR          provisioning.NIR
	LastName     string
	FirstName    string
	BirthDate    time.Time
	Email        string    // empty when absent or invalid
	AddressLines [4]string // AFNOR lines 2 to 5
	Postcode     string
	City         string
	Country      string // empty for France
	GuardianNIR  string
	DeathDate    *time.Time
	// Department of residence, from the postcode ("99" abroad), or else
	// from the caisse: what places a person in a department's wave.
	Department string
	Protection string // an adult's: ProtectionTutelle, ProtectionCuratelle or ""
	Caisse     string // the organisme d'affiliation, "" when absent or invalid
	// ReplacesNIR is the number this row's NIR replaces (a provisional
	// number becoming final): the person keeps their account under the new.
	ReplacesNIR string
}

// RowResult is the outcome of validating one row: a Person, or a reason.
type RowResult struct {
	Person   Person
	Reject   RejectReason
	Warnings []string
	// RawNIR is the nir field as given, for the masked reject record.
	RawNIR string
}

// departmentOf is the department a record places its person in, read
// from its postcode or else its caisse, even when the record is rejected:
// a wave's report counts the rejects of its own departments. "" when
// neither says.
func (h *Header) departmentOf(rec []string) string {
	if len(rec) != len(h.Names) {
		return ""
	}
	c := &h.col
	country := field(rec, c.country)
	if strings.EqualFold(country, "France") {
		country = ""
	}
	if d := provisioning.DepartmentOf(field(rec, c.postcode), country); d != "" {
		return d
	}
	return provisioning.CaisseDepartment(strings.ToUpper(field(rec, c.caisse)))
}

// ValidateRow checks one record against SPEC §1. today is the import's
// calendar day in Europe/Paris, for "not in the future" and minority.
func (h *Header) ValidateRow(rec []string, today time.Time) RowResult {
	var r RowResult
	c := &h.col
	if len(rec) != len(h.Names) {
		if c.nir < len(rec) {
			r.RawNIR = rec[c.nir]
		}
		r.Reject = RejectColumnCount
		return r
	}
	r.RawNIR = field(rec, c.nir)
	for _, f := range rec {
		if !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 { // PostgreSQL text holds no NUL
			r.Reject = RejectEncoding
			return r
		}
	}
	nir, err := provisioning.ParseNIR(r.RawNIR)
	switch {
	case errors.Is(err, provisioning.ErrNIRKey):
		r.Reject = RejectNIRKey
		return r
	case err != nil:
		r.Reject = RejectNIRFormat
		return r
	}
	p := &r.Person
	p.NIR = nir
	p.LastName, p.FirstName = field(rec, c.lastName), field(rec, c.firstName)
	if p.LastName == "" || p.FirstName == "" {
		r.Reject = RejectNameMissing
		return r
	}
	birth, err := time.Parse(time.DateOnly, field(rec, c.birthDate))
	if err != nil || birth.After(today) {
		r.Reject = RejectBirthDate
		return r
	}
	p.BirthDate = birth
	if nir.CheckBirthDate(birth) != nil {
		r.Reject = RejectNIRBirthMismatch
		return r
	}
	if d := field(rec, c.deathDate); d != "" {
		death, err := time.Parse(time.DateOnly, d)
		if err != nil || death.Before(birth) || death.After(today) {
			r.Reject = RejectDeathDate
			return r
		}
		p.DeathDate = &death
	}
	for i := range p.AddressLines {
		p.AddressLines[i] = field(rec, c.addressLines[i])
	}
	p.Postcode, p.City, p.Country = field(rec, c.postcode), field(rec, c.city), field(rec, c.country)
	if strings.EqualFold(p.Country, "France") {
		p.Country = ""
	}
	tooLong := utf8.RuneCountInString(p.Postcode)+1+utf8.RuneCountInString(p.City) > MaxAddressLine ||
		utf8.RuneCountInString(p.Country) > MaxAddressLine
	for _, l := range p.AddressLines {
		tooLong = tooLong || utf8.RuneCountInString(l) > MaxAddressLine
	}
	if tooLong {
		r.Reject = RejectAddressTooLong
		return r
	}
	if e := field(rec, c.email); e != "" {
		if validEmail(e) {
			p.Email = e
		} else {
			r.Warnings = append(r.Warnings, WarningEmailInvalid)
		}
	}
	if v := field(rec, c.replacesNIR); v != "" {
		old, err := provisioning.ParseNIR(v)
		if err != nil || old == p.NIR {
			r.Reject = RejectReplacesNIR
			return r
		}
		p.ReplacesNIR = string(old)
	}
	if v := strings.ToUpper(field(rec, c.caisse)); v != "" {
		if provisioning.CaisseDepartment(v) != "" {
			p.Caisse = v
		} else {
			r.Warnings = append(r.Warnings, WarningCaisseInvalid)
		}
	}
	p.Department = provisioning.DepartmentOf(p.Postcode, p.Country)
	if p.Department == "" {
		p.Department = provisioning.CaisseDepartment(p.Caisse)
	}
	if g := field(rec, c.guardianNIR); g != "" {
		if gn, err := provisioning.ParseNIR(g); err == nil {
			p.GuardianNIR = string(gn)
		}
	}
	switch v := strings.ToLower(field(rec, c.protection)); v {
	case "", ProtectionTutelle, ProtectionCuratelle:
		p.Protection = v
	default:
		r.Reject = RejectProtection
		return r
	}
	if p.DeathDate != nil {
		return r // never notified: no channel or guardian needed
	}
	if p.Protection != "" && p.GuardianNIR == "" {
		r.Reject = RejectProtectedWithoutGuardian
		return r
	}
	if p.Email == "" && !p.PostalComplete() {
		r.Reject = RejectNoChannel
		return r
	}
	// Whether the notice goes to a representative is judged when it is
	// sent; at import a guardian is required only of those who will still
	// be minors in minorMargin (a wave's notices go out within weeks).
	if IsMinor(birth, today.AddDate(0, 0, minorMargin)) && p.GuardianNIR == "" {
		r.Reject = RejectMinorWithoutGuardian
		return r
	}
	return r
}

// minorMargin is how many days ahead the import judges minority.
const minorMargin = 30

// PostalComplete reports whether a letter can be addressed: a line 4 or 5,
// a postcode (5 digits in France) and a city.
func (p *Person) PostalComplete() bool {
	return provisioning.PostalComplete(p.AddressLines, p.Postcode, p.City, p.Country)
}

// IsMinor reports whether someone born on birth is under 18 on day.
func IsMinor(birth, day time.Time) bool {
	return birth.AddDate(18, 0, 0).After(day)
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	return at > 0 && strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".") && !strings.ContainsAny(s, " <>")
}
