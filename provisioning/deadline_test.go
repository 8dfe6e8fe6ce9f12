package provisioning_test

import (
	"testing"
	"time"

	"github.com/ens-sante/ens/provisioning"
)

// clockChanges are Europe/Paris's changes of 2027 and 2028 (spring forward,
// fall back), at 01:00 UTC.
var clockChanges = []time.Time{
	time.Date(2027, 3, 28, 1, 0, 0, 0, time.UTC), time.Date(2027, 10, 31, 1, 0, 0, 0, time.UTC),
	time.Date(2028, 3, 26, 1, 0, 0, 0, time.UTC), time.Date(2028, 10, 29, 1, 0, 0, 0, time.UTC),
}

// Every deadline is counted in Paris calendar days: an email sent, or a
// letter rendered, at any moment of the week around a clock change ends its
// window at 23:59:59 of the right day — 42 days after, plus the 5-day
// print-and-post delay for a letter. (Before, the delay was 120 hours:
// letters rendered 00:00–01:00 in the five days before the October change
// printed one day early, 23:00–24:00 before the March change one day late.)
func TestDeadlinesCountCalendarDaysAcrossClockChanges(t *testing.T) {
	t.Parallel()
	w := &provisioning.Wave{Window: provisioning.Window(provisioning.DefaultWindow)}
	endOf := func(at time.Time, days int) time.Time {
		y, m, d := at.In(provisioning.Paris).Date()
		return time.Date(y, m, d+days, 23, 59, 59, 0, provisioning.Paris)
	}
	checked := 0
	for _, change := range clockChanges {
		for at := change.AddDate(0, 0, -7); at.Before(change.AddDate(0, 0, 2)); at = at.Add(10 * time.Minute) {
			if got, want := w.Deadline(at), endOf(at, 42); !got.Equal(want) {
				t.Fatalf("email sent %s: deadline %s, want %s", at.In(provisioning.Paris), got, want)
			}
			if got, want := w.PrintedDeadline(at, 5*24*time.Hour), endOf(at, 47); !got.Equal(want) {
				t.Fatalf("letter rendered %s: prints %s, want %s", at.In(provisioning.Paris), got.In(provisioning.Paris), want)
			}
			checked++
		}
	}
	if checked < 4*9*24*6 {
		t.Fatalf("only %d moments checked", checked)
	}
}

// One duration syntax everywhere: Go durations, and whole days before an
// optional Go duration.
func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "5d", want: 5 * 24 * time.Hour},
		{in: "3d12h", want: 84 * time.Hour},
		{in: "72h", want: 72 * time.Hour},
		{in: "90s", want: 90 * time.Second},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: " 2d ", want: 48 * time.Hour},
		{in: "abc", bad: true},
		{in: "5 days", bad: true},
		{in: "-1d", bad: true},
		{in: "-5m", bad: true},
		{in: "d", bad: true},
		{in: "", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := provisioning.ParseDuration(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := provisioning.ParseDuration(provisioning.FormatDuration(got)); err != nil || back != got {
				t.Fatalf("FormatDuration(%v) = %q does not read back: %v %v", got, provisioning.FormatDuration(got), back, err)
			}
		})
	}
}
