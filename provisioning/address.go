package provisioning

import (
	"strings"
	"time"
)

// PostalComplete is the one rule for an address a letter can go to: a line
// 4 or 5, a postcode (5 digits in France) and a city.
func PostalComplete(lines [4]string, postcode, city, country string) bool {
	if lines[2] == "" && lines[3] == "" {
		return false
	}
	if city == "" || postcode == "" {
		return false
	}
	return country != "" || (len(postcode) == 5 && isDigits(postcode))
}

// DepartmentOf derives the department of residence from a French postcode:
// 200xx/201xx → 2A, 202xx–206xx → 2B, 97x → 971–976, else the first two
// digits. Abroad is "99"; an unusable postcode gives "".
func DepartmentOf(postcode, country string) string {
	if country != "" {
		return "99"
	}
	if len(postcode) != 5 || !isDigits(postcode) {
		return ""
	}
	switch postcode[:2] {
	case "20":
		if postcode[2] <= '1' {
			return "2A"
		}
		return "2B"
	case "97", "98":
		return postcode[:3]
	}
	return postcode[:2]
}

// CaisseDepartment is the department of an organisme d'affiliation's code
// (the registry's caisse, three characters): its first two characters
// (2A and 2B for Corsica), or three for the overseas 97x and 98x. "" when
// code is not one.
func CaisseDepartment(code string) string {
	if len(code) != 3 || !isDigits(code[2:]) {
		return ""
	}
	switch {
	case code[:2] == "2A" || code[:2] == "2B":
		return code[:2]
	case !isDigits(code[:2]) || code[:2] == "00":
		return ""
	case code[:2] == "97" || code[:2] == "98":
		return code
	}
	return code[:2]
}

// Delivery is La Poste's delay from posting to the letter box, by
// destination: metropolitan France (Corsica included), the overseas
// departments and collectivities (97x, 98x), abroad (department 99).
type Delivery struct {
	Metropolitan, Overseas, Abroad time.Duration
}

// DefaultDelivery is the delivery a campaign counts on unless configured
// (ENS_DELIVERY_DELAY, ENS_DELIVERY_DELAY_OVERSEAS, ENS_DELIVERY_DELAY_ABROAD):
// La Poste's lettre verte in France, by air overseas and abroad.
var DefaultDelivery = Delivery{Metropolitan: 3 * 24 * time.Hour, Overseas: 7 * 24 * time.Hour, Abroad: 10 * 24 * time.Hour}

// For is the delivery of a letter addressed in department.
func (d Delivery) For(department string) time.Duration {
	switch {
	case department == "99":
		return d.Abroad
	case strings.HasPrefix(department, "97"), strings.HasPrefix(department, "98"):
		return d.Overseas
	}
	return d.Metropolitan
}
