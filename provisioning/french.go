package provisioning

import (
	"fmt"
	"time"
)

var frMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
	"octobre", "novembre", "décembre"}

// FrenchDate writes the Paris calendar day of t in full French: "15 mars
// 2027" ("1er" for the first of the month).
func FrenchDate(t time.Time) string {
	t = t.In(Paris)
	day := fmt.Sprint(t.Day())
	if t.Day() == 1 {
		day = "1er"
	}
	return fmt.Sprintf("%s %s %d", day, frMonths[t.Month()-1], t.Year())
}

// FrenchDeadline is a deadline as every notice and page states it:
// "jusqu'au 15 mars 2027 inclus", or with the time for a rehearsal window
// that does not end at midnight.
func FrenchDeadline(t time.Time) string {
	lt := t.In(Paris)
	if lt.Hour() == 23 && lt.Minute() == 59 {
		return "jusqu'au " + FrenchDate(t) + " inclus"
	}
	return fmt.Sprintf("jusqu'au %s à %02dh%02d", FrenchDate(t), lt.Hour(), lt.Minute())
}

// FrenchDateTime is a moment as receipts state it: "15 mars 2027 à 14h05".
func FrenchDateTime(t time.Time) string {
	return FrenchDate(t) + " à " + t.In(Paris).Format("15h04")
}
