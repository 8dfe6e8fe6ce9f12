package report_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/report"
	"github.com/ens-sante/ens/provisioning/wave"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestReportSameDataSameBytes(t *testing.T) {
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: 300, Seed: 5})
	testdb.Launch(t, pool, provisioning.WaveSpec{Name: "w", Departments: []string{"75"}, Window: provisioning.Window(3600e9), Actor: "alice"})
	at := time.Now()
	r, err := wave.BuildReport(ctx, pool, "w", wave.StatusOptions{At: at, AuditKey: testdb.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range report.Formats {
		var a, b bytes.Buffer
		r2, _ := wave.BuildReport(ctx, pool, "w", wave.StatusOptions{At: at, AuditKey: testdb.AuditKey})
		if err := report.Write(&a, r, format); err != nil {
			t.Fatal(err)
		}
		report.Write(&b, r2, format)
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: the same data rendered to different bytes", format)
		}
	}
	var text bytes.Buffer
	report.Write(&text, r, "text")
	for _, want := range []string{"REHEARSAL", "departments 75", "cancelled", "no department", "intact", "as of"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q", want)
		}
	}
	pdf, _ := report.PDF(r)
	cmd := exec.Command("pdftotext", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "Wave report") || !strings.Contains(string(out), "per day") {
		t.Fatalf("PDF text: %v\n%s", err, out)
	}
}
