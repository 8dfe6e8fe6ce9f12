package provisioning

import (
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

// EndOfDay returns 23:59:59 in Paris of the calendar day of t.
func EndOfDay(t time.Time) time.Time {
	y, m, d := t.In(Paris).Date()
	return time.Date(y, m, d, 23, 59, 59, 0, Paris)
}

// AddDays adds d to t: whole days as Europe/Paris calendar days (the same
// clock time d/24h days later, whatever clock change lies between), any
// other duration as elapsed time (rehearsals and tests).
func AddDays(t time.Time, d time.Duration) time.Time {
	if d > 0 && d%(24*time.Hour) == 0 {
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
