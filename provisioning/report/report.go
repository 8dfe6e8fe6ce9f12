// Package report renders wave reports for auditors — text, JSON, CSV and PDF
// (with a chart of notices and oppositions per day). Rendering is a pure
// function of a wave.Report: the same data gives the same bytes.
// Reports carry counts only, never personal data.
package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jung-kurt/gofpdf"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/wave"
)

// Formats lists the formats Write accepts.
var Formats = []string{"text", "json", "csv", "pdf"}

// Write renders r in format to w.
func Write(w io.Writer, r *wave.Report, format string) error {
	switch format {
	case "text":
		return Text(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "csv":
		return CSV(w, r)
	case "pdf":
		b, err := PDF(r)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown format %q (text, json, csv or pdf)", format)
}

func ts(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.In(provisioning.Paris).Format("2006-01-02 15:04:05 MST")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lines is the report as label/value rows, shared by text, CSV and PDF.
func lines(r *wave.Report) [][3]string {
	w := r.Wave
	var out [][3]string
	add := func(section, label, value string) { out = append(out, [3]string{section, label, value}) }
	crit := "all departments"
	if len(w.Departments) > 0 {
		crit = "departments " + strings.Join(w.Departments, ",")
	}
	if w.BornFrom != nil || w.BornTo != nil {
		crit += fmt.Sprintf(", born %s–%s", intOr(w.BornFrom), intOr(w.BornTo))
	}
	if w.Limit != nil {
		crit += fmt.Sprintf(", at most %d", *w.Limit)
	}
	add("report", "as of", ts(&r.AsOf))
	add("wave", "name", w.Name)
	add("wave", "criteria", crit)
	add("wave", "launched", ts(&w.LaunchedAt)+" by "+w.LaunchedBy)
	win := w.Window.String()
	if r.Rehearsal {
		win += " (REHEARSAL: shorter than 42 days)"
	}
	add("wave", "window", win)
	if w.ExtendedUntil != nil {
		add("wave", "extended until", ts(w.ExtendedUntil))
	}
	add("wave", "accounts created", strconv.FormatInt(w.Created, 10))
	for _, s := range provisioning.States {
		add("accounts", string(s), strconv.FormatInt(r.Accounts[s], 10))
	}
	for _, ch := range []string{"email", "letter"} {
		for _, s := range wave.NoticeStatuses {
			add("notices", ch+" "+s, strconv.FormatInt(r.Notices[ch][s], 10))
		}
	}
	for _, k := range sortedKeys(r.Fallbacks) {
		add("fell back to letter", k, strconv.FormatInt(r.Fallbacks[k], 10))
	}
	for _, k := range sortedKeys(r.Failures) {
		add("failures", k, strconv.FormatInt(r.Failures[k], 10))
	}
	for _, k := range sortedKeys(r.Unreachable) {
		add("unreachable (call centre)", k, strconv.FormatInt(r.Unreachable[k], 10))
	}
	for _, k := range sortedKeys(r.AfterActivation) {
		add("failed after activation (call centre)", k, strconv.FormatInt(r.AfterActivation[k], 10))
	}
	l := r.Letters
	add("letter batches", "rendered, awaiting posting", strconv.FormatInt(l.Rendered, 10))
	add("letter batches", "posted", strconv.FormatInt(l.Posted, 10))
	overdue := strconv.FormatInt(l.Overdue, 10)
	if l.Overdue > 0 {
		overdue += " (OVERDUE: not acknowledged by the printer in time)"
	}
	add("letter batches", "overdue", overdue)
	add("letter batches", "people past their deadline awaiting posting (not activated)", strconv.FormatInt(l.AwaitingPosting, 10))
	add("imports", "distinct files imported before launch", strconv.FormatInt(r.Imports, 10))
	for _, k := range sortedKeys(r.Rejects) {
		add("import rejects", k, strconv.FormatInt(r.Rejects[k], 10))
	}
	if len(w.Departments) > 0 {
		add("import rejects", "no department (not counted above)", strconv.FormatInt(r.RejectsUnplaced, 10))
	}
	add("oppositions", "standing", strconv.FormatInt(r.Oppositions.Standing, 10))
	add("oppositions", "withdrawn", strconv.FormatInt(r.Oppositions.Withdrawn, 10))
	add("oppositions", "rate", strconv.FormatFloat(100*r.Oppositions.Rate, 'f', 2, 64)+" %")
	add("accounts", "activated early by their holder", strconv.FormatInt(r.ActivatedByHolder, 10))
	for _, k := range sortedKeys(r.Oppositions.ByChannel) {
		add("oppositions", "by "+k, strconv.FormatInt(r.Oppositions.ByChannel[k], 10))
	}
	for _, d := range r.PerDay {
		add("per day", d.Day, fmt.Sprintf("%d notices, %d oppositions", d.Notices, d.Oppositions))
	}
	add("timings", "first email", ts(r.FirstNotice))
	add("timings", "last email", ts(r.LastNotice))
	if r.LastNotice != nil {
		add("timings", "launch to last email", r.LastNotice.Sub(w.LaunchedAt).Round(time.Second).String())
	}
	add("timings", "letters first posted", day(r.FirstPosted))
	add("timings", "letters last posted", day(r.LastPosted))
	add("timings", "last deadline", ts(r.LastDeadline))
	for _, k := range sortedKeys(r.Jobs) {
		for _, s := range sortedKeys(r.Jobs[k]) {
			add("river jobs", k+" "+s, strconv.FormatInt(r.Jobs[k][s], 10))
		}
	}
	for _, k := range sortedKeys(r.JobErrors) {
		add("river job errors", k, strconv.FormatInt(r.JobErrors[k], 10))
	}
	if rc := r.Reconciliation; rc != nil {
		if rc.Clean {
			add("reconciliation", "ens reconcile", "clean: every person accounted for")
		}
		for _, k := range sortedKeys(rc.Anomalies) {
			add("reconciliation", k, strconv.FormatInt(rc.Anomalies[k], 10)+" (ens reconcile lists the accounts)")
		}
	}
	audit := fmt.Sprintf("intact (%d events)", r.AuditEvents)
	if !r.AuditOK {
		audit = "BROKEN: " + r.AuditProblem
	}
	add("audit", "hash chain", audit)
	head := r.AuditHead
	if head == "" {
		head = "-"
	}
	add("audit", "head (event id, hash)", head)
	return out
}

func day(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.In(provisioning.Paris).Format(time.DateOnly)
}

func intOr(p *int) string {
	if p == nil {
		return "…"
	}
	return strconv.Itoa(*p)
}

// Text writes the report for a terminal.
func Text(w io.Writer, r *wave.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	section := ""
	for _, l := range lines(r) {
		if l[0] != section {
			section = l[0]
			fmt.Fprintf(tw, "\n%s\n", strings.ToUpper(section))
		}
		fmt.Fprintf(tw, "  %s\t%s\n", l[1], l[2])
	}
	return tw.Flush()
}

// CSV writes section,label,value rows.
func CSV(w io.Writer, r *wave.Report) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"section", "label", "value"}) //nolint:errcheck
	for _, l := range lines(r) {
		cw.Write(l[:]) //nolint:errcheck
	}
	cw.Flush()
	return cw.Error()
}

// PDF renders the report with a bar chart of notices and oppositions per
// day. Its dates are the wave's, so the same data gives the same bytes.
func PDF(r *wave.Report) ([]byte, error) {
	pdf := gofpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(r.Wave.LaunchedAt.UTC())
	pdf.SetModificationDate(r.Wave.LaunchedAt.UTC())
	pdf.SetCatalogSort(true)
	pdf.SetCompression(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 15)
	pdf.CellFormat(0, 9, tr("Wave report — "+r.Wave.Name), "", 1, "L", false, 0, "")
	chart(pdf, tr, r.PerDay)
	section := ""
	for _, l := range lines(r) {
		if pdf.GetY() > 275 {
			pdf.AddPage()
		}
		if l[0] != section {
			section = l[0]
			pdf.Ln(2)
			pdf.SetFont("Helvetica", "B", 10)
			pdf.CellFormat(0, 6, tr(strings.ToUpper(section)), "B", 1, "L", false, 0, "")
		}
		pdf.SetFont("Helvetica", "", 9)
		pdf.CellFormat(70, 5, tr(truncate(l[1], 45)), "", 0, "L", false, 0, "")
		pdf.CellFormat(0, 5, tr(truncate(l[2], 70)), "", 1, "L", false, 0, "")
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("rendering report PDF: %w", err)
	}
	return buf.Bytes(), nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// chart draws notices (blue) and oppositions (red) per day as bars.
func chart(pdf *gofpdf.Fpdf, tr func(string) string, days []wave.DayCount) {
	x0, y0, w, h := 25.0, pdf.GetY()+4, 165.0, 60.0
	pdf.SetFont("Helvetica", "", 8)
	pdf.SetXY(x0, y0-1)
	pdf.CellFormat(w, 4, tr("Notices (blue) and oppositions (red) per day"), "", 0, "L", false, 0, "")
	top := y0 + 5
	pdf.SetDrawColor(120, 120, 120)
	pdf.Line(x0, top+h, x0+w, top+h)
	pdf.Line(x0, top, x0, top+h)
	var peak int64 = 1
	for _, d := range days {
		peak = max(peak, d.Notices, d.Oppositions)
	}
	pdf.SetXY(5, top-2)
	pdf.CellFormat(18, 4, strconv.FormatInt(peak, 10), "", 0, "R", false, 0, "")
	pdf.SetXY(5, top+h-2)
	pdf.CellFormat(18, 4, "0", "", 0, "R", false, 0, "")
	if len(days) == 0 {
		pdf.SetXY(x0, top+h/2)
		pdf.CellFormat(w, 5, tr("no notice sent yet"), "", 0, "C", false, 0, "")
	}
	slot := w / float64(max(len(days), 1))
	bar := min(slot*0.4, 12)
	for i, d := range days {
		x := x0 + float64(i)*slot + slot/2 - bar
		hn := h * float64(d.Notices) / float64(peak)
		ho := h * float64(d.Oppositions) / float64(peak)
		pdf.SetFillColor(0, 0, 145)
		pdf.Rect(x, top+h-hn, bar, hn, "F")
		pdf.SetFillColor(206, 5, 0)
		pdf.Rect(x+bar, top+h-ho, bar, ho, "F")
		pdf.SetXY(x-3, top+h-hn-4)
		pdf.CellFormat(bar+6, 4, strconv.FormatInt(d.Notices, 10), "", 0, "C", false, 0, "")
		pdf.SetXY(x+bar-3, top+h-ho-4)
		pdf.CellFormat(bar+6, 4, strconv.FormatInt(d.Oppositions, 10), "", 0, "C", false, 0, "")
		if len(days) <= 20 || i%(len(days)/10+1) == 0 {
			pdf.SetXY(x-5, top+h+1)
			pdf.CellFormat(2*bar+10, 4, d.Day[5:], "", 0, "C", false, 0, "")
		}
	}
	pdf.SetY(top + h + 8)
}
