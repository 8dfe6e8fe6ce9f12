package provisioning

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata"
)

// Paris is the time zone deadlines and calendar days are reckoned in.
var Paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// Clock returns the current time. Tests inject a fixed or moving clock;
// production uses time.Now. There is deliberately no CLI flag to change it.
type Clock func() time.Time

// Now returns c(), or time.Now when c is nil.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// Day returns the calendar day of t in Paris, at midnight UTC, for date
// comparisons.
func Day(t time.Time) time.Time {
	y, m, d := t.In(Paris).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// StartOfDay returns midnight in Paris of the calendar day of t.
func StartOfDay(t time.Time) time.Time {
	y, m, d := t.In(Paris).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, Paris)
}

// EndOfDay returns 23:59:59 in Paris of the calendar day of t.
func EndOfDay(t time.Time) time.Time {
	y, m, d := t.In(Paris).Date()
	return time.Date(y, m, d, 23, 59, 59, 0, Paris)
}

// AddDays adds d to t: whole days as Europe/Paris calendar days (the same
// clock time d/24h days later or earlier, whatever clock change lies
// between), any other duration as elapsed time (rehearsals and tests).
func AddDays(t time.Time, d time.Duration) time.Time {
	if d != 0 && d%(24*time.Hour) == 0 {
		return t.In(Paris).AddDate(0, 0, int(d/(24*time.Hour)))
	}
	return t.Add(d)
}

// PrintedDeadline is the deadline a letter rendered at renderedAt prints:
// the wave's window counted from the render day plus the print-and-post
// delay, in calendar days.
func (w *Wave) PrintedDeadline(renderedAt time.Time, postDelay time.Duration) time.Time {
	return w.Deadline(AddDays(renderedAt, postDelay))
}

// ParseDuration reads the one duration syntax of ens, for every variable
// and flag: a Go duration ("90s", "72h", "1h30m"), or whole days before an
// optional Go duration ("5d", "3d12h"). Days are calendar days where a
// deadline is counted (AddDays); here they are 24 hours. Negative
// durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: write whole days then 'd' (5d), or a Go duration (72h, 90s)", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write whole days then 'd' (5d), or a Go duration (72h, 90s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return days + d, nil
}

// FormatDuration writes d as ParseDuration reads it: whole days as "5d",
// anything else as a Go duration.
func FormatDuration(d time.Duration) string {
	if d != 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// timeZones are the departments of residence whose clocks are not Paris's.
var timeZones = map[string]*time.Location{
	"971": mustLoad("America/Guadeloupe"), "972": mustLoad("America/Martinique"), "973": mustLoad("America/Cayenne"),
	"974": mustLoad("Indian/Reunion"), "975": mustLoad("America/Miquelon"), "976": mustLoad("Indian/Mayotte"),
	"977": mustLoad("America/St_Barthelemy"), "978": mustLoad("America/Marigot"),
	"986": mustLoad("Pacific/Wallis"), "987": mustLoad("Pacific/Tahiti"), "988": mustLoad("Pacific/Noumea"),
}

// TimeZone is the time zone of a department of residence: Paris's unless
// it is one overseas (971 Guadeloupe … 988 Nouvelle-Calédonie).
func TimeZone(department string) *time.Location {
	if tz, ok := timeZones[department]; ok {
		return tz
	}
	return Paris
}

// LocalDeadline is the last moment an opposition counts for deadline, for a
// person living in department: a deadline at the end of a day (23:59:59 in
// Paris, as every notice prints it) lasts to the end of that calendar day in
// the person's time zone — 23:59 in Guadeloupe is 05:59 the next morning in
// Paris — and never ends before it does in Paris; a rehearsal's deadline
// (any other time of day) is kept. The database's ens_local_deadline is the
// same rule.
func LocalDeadline(deadline time.Time, department string) time.Time {
	p := deadline.In(Paris)
	if h, m, s := p.Clock(); h != 23 || m != 59 || s != 59 || p.Nanosecond() != 0 {
		return deadline
	}
	y, mo, d := p.Date()
	local := time.Date(y, mo, d, 23, 59, 59, 0, TimeZone(department))
	if local.After(deadline) {
		return local
	}
	return deadline
}
