package provisioning

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// NIR validation errors, one per registry reject reason they map to.
var (
	ErrNIRFormat        = errors.New("NIR is not 15 characters of the expected shape")
	ErrNIRKey           = errors.New("NIR key does not match")
	ErrNIRBirthMismatch = errors.New("NIR contradicts the birth date")
)

// NIR is a validated French social security number (numéro d'inscription au
// répertoire), 15 characters: 13 then a 2-digit key.
type NIR string

// NormaliseNIR is the one way a NIR is read, wherever it comes from (a
// registry's nir or guardian_nir, the CLI, an agent): spaces, dots and
// dashes removed, Corsica's 2a/2b in capitals.
func NormaliseNIR(s string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		switch r {
		case ' ', '.', '-', '\u00a0', '\u202f', '\t':
			return -1
		}
		return r
	}, s))
}

// ParseNIR normalises s (NormaliseNIR), then checks its shape and key
// (SPEC §1.1).
func ParseNIR(s string) (NIR, error) {
	s = NormaliseNIR(s)
	if !nirShape(s) {
		return "", ErrNIRFormat
	}
	if nirKey(s[:13]) != s[13:] {
		return "", ErrNIRKey
	}
	return NIR(s), nil
}

// nirShape reports whether s is S YY MM DD CCC OOO KK with the digit ranges of
// SPEC §1.1.
func nirShape(s string) bool {
	if len(s) != 15 {
		return false
	}
	switch s[0] {
	case '1', '2', '3', '4', '7', '8':
	default:
		return false
	}
	for i := 1; i < 15; i++ {
		if i == 5 || i == 6 {
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	month := atoi2(s[3:5])
	if month < 1 || (month > 12 && month < 20) || (month > 42 && month < 50) {
		return false
	}
	dept := s[5:7]
	switch {
	case dept == "2A" || dept == "2B":
	case isDigits(dept):
		d := atoi2(dept)
		if d < 1 || d > 99 {
			return false
		}
		if d == 97 || d == 98 {
			// 97x / 98x: the third digit is taken from the commune.
			if c := s[7]; c < '1' || c > '9' {
				return false
			}
		}
	default:
		return false
	}
	if s[10:13] == "000" {
		return false
	}
	if k := atoi2(s[13:15]); k < 1 || k > 97 {
		return false
	}
	return true
}

// nirKey computes the 2-digit key of the 13-character number, reading 2A as 19
// and 2B as 18.
func nirKey(first13 string) string {
	b := []byte(first13)
	if b[5] == '2' && (b[6] == 'A' || b[6] == 'B') {
		if b[6] == 'A' {
			b[5], b[6] = '1', '9'
		} else {
			b[5], b[6] = '1', '8'
		}
	}
	var mod uint64
	for _, c := range b {
		mod = (mod*10 + uint64(c-'0')) % 97
	}
	k := 97 - mod
	return string([]byte{byte('0' + k/10), byte('0' + k%10)})
}

// Sex is the first digit of the NIR.
func (n NIR) Sex() int { return int(n[0] - '0') }

// Female reports whether the NIR is a woman's (2, 4, 8), for "Madame".
func (n NIR) Female() bool { return n[0] == '2' || n[0] == '4' || n[0] == '8' }

// Masked renders the NIR safe for logs and reports: 1 84 12 75 *** *** 44.
func (n NIR) Masked() string { return MaskNIR(string(n)) }

// MaskNIR masks any string that may be a NIR, valid or not, so that a reject
// report never shows a full number. Short or odd input is masked entirely.
func MaskNIR(s string) string {
	if len(s) != 15 || !isASCII(s) {
		return "*** (" + strconv.Itoa(len([]rune(s))) + " car.)"
	}
	return s[0:1] + " " + s[1:3] + " " + s[3:5] + " " + s[5:7] + " *** *** " + s[13:15]
}

// CheckBirthDate reports ErrNIRBirthMismatch when the NIR's year or month
// contradicts birth. Months 20–42 and 50–99 are never a mismatch.
func (n NIR) CheckBirthDate(birth time.Time) error {
	if atoi2(string(n[1:3])) != birth.Year()%100 {
		return ErrNIRBirthMismatch
	}
	if m := atoi2(string(n[3:5])); m >= 1 && m <= 12 && m != int(birth.Month()) {
		return ErrNIRBirthMismatch
	}
	return nil
}

func atoi2(s string) int {
	if len(s) != 2 || !isDigits(s) {
		return -1
	}
	return int(s[0]-'0')*10 + int(s[1]-'0')
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
