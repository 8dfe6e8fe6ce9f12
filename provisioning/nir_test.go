package provisioning_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ens-sante/ens/provisioning"
)

func TestParseNIR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		nir  string
		want error
	}{
		{"metropole", "255081416802538", nil},
		{"corse du sud", "284052A32102552", nil},
		{"haute corse", "284052B32102579", nil},
		{"born abroad", "295109912611193", nil},
		{"wrong key", "255081416802539", provisioning.ErrNIRKey},
		{"too short", "25508141680253", provisioning.ErrNIRFormat},
		{"bad sex digit", "555081416802538", provisioning.ErrNIRFormat},
		{"month 13", "255131416802538", provisioning.ErrNIRFormat},
		{"letters", "2550814168025AB", provisioning.ErrNIRFormat},
		{"order 000", "255081416800038", provisioning.ErrNIRFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := provisioning.ParseNIR(tt.nir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseNIR(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestNIRMaskedNeverShowsTheNumber(t *testing.T) {
	t.Parallel()
	n, _ := provisioning.ParseNIR("184127512345640")
	if got, want := n.Masked(), "1 84 12 75 *** *** 40"; got != want {
		t.Fatalf("Masked() = %q, want %q", got, want)
	}
	if got := provisioning.MaskNIR("12345"); got != "*** (5 car.)" {
		t.Fatalf("MaskNIR(short) = %q", got)
	}
}

func TestBirthMismatch(t *testing.T) {
	t.Parallel()
	n, _ := provisioning.ParseNIR("255081416802538") // born 1955-08
	d := func(s string) time.Time { v, _ := time.Parse(time.DateOnly, s); return v }
	if err := n.CheckBirthDate(d("1955-08-12")); err != nil {
		t.Fatalf("matching birth date refused: %v", err)
	}
	if err := n.CheckBirthDate(d("1955-09-12")); err == nil {
		t.Fatal("month mismatch accepted")
	}
	if err := n.CheckBirthDate(d("1956-08-12")); err == nil {
		t.Fatal("year mismatch accepted")
	}
}

func TestDeadlineEndsAtMidnightParis(t *testing.T) {
	t.Parallel()
	w := &provisioning.Wave{Window: provisioning.Window(provisioning.DefaultWindow)}
	// Sent at 23:30 Paris on 1 Feb 2027 (22:30 UTC): 42 days later is 15
	// March, which is still winter time.
	sent := time.Date(2027, 2, 1, 22, 30, 0, 0, time.UTC)
	got := w.Deadline(sent)
	want := time.Date(2027, 3, 15, 23, 59, 59, 0, provisioning.Paris)
	if !got.Equal(want) {
		t.Fatalf("Deadline = %v, want %v", got, want)
	}
	// Across the change to summer time (28 March 2027).
	got = w.Deadline(time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC))
	if want := time.Date(2027, 4, 12, 23, 59, 59, 0, provisioning.Paris); !got.Equal(want) {
		t.Fatalf("Deadline across DST = %v, want %v", got, want)
	}
	ext := time.Date(2027, 5, 1, 23, 59, 59, 0, provisioning.Paris)
	w.ExtendedUntil = &ext
	if got := w.Deadline(sent); !got.Equal(ext) {
		t.Fatalf("extended Deadline = %v, want %v", got, ext)
	}
}

func TestFrenchDates(t *testing.T) {
	t.Parallel()
	at := time.Date(2027, 8, 1, 12, 5, 0, 0, time.UTC)
	if got := provisioning.FrenchDate(at); got != "1er août 2027" {
		t.Fatalf("FrenchDate = %q", got)
	}
	if got := provisioning.FrenchDateTime(at); got != "1er août 2027 à 14h05" {
		t.Fatalf("FrenchDateTime = %q", got)
	}
	if got := provisioning.FrenchDeadline(time.Date(2027, 3, 15, 23, 59, 59, 0, provisioning.Paris)); got != "jusqu'au 15 mars 2027 inclus" {
		t.Fatalf("FrenchDeadline = %q", got)
	}
}
