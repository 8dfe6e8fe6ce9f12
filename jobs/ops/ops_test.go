package ops_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/jobs/ops"
	"github.com/ens-sante/ens/provisioning"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestEachRoleSeesOnlyWhatItMay(t *testing.T) {
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.Import(t, pool, fixtures.RegistryOptions{Count: 100, Seed: 1})
	testdb.Launch(t, pool, provisioning.WaveSpec{Name: "w", Actor: "a"})
	hash := func(p string) string {
		h, _ := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		return string(h)
	}
	users, err := ops.ParseUsers(strings.NewReader("# users\nolga:operator:" + hash("o-pass") + "\nadam:auditor:" + hash("a-pass") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	client, _ := jobs.NewInsertClient(pool)
	h, err := ops.NewHandler(pool, client, users, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := h.Start(sctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, user, pass string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, method, path, user, pass string
		want                           int
	}{
		{"nobody", "GET", "/ops/", "", "", 401},
		{"wrong password", "GET", "/ops/", "olga", "nope", 401},
		{"unknown user", "GET", "/ops/", "eve", "o-pass", 401},
		{"auditor index", "GET", "/ops/", "adam", "a-pass", 200},
		{"auditor report pdf", "GET", "/ops/reports/w?format=pdf", "adam", "a-pass", 200},
		{"auditor river UI", "GET", "/ops/river/", "adam", "a-pass", 403},
		{"auditor writes", "POST", "/ops/river/api/jobs/cancel", "adam", "a-pass", 403},
		{"operator river UI", "GET", "/ops/river/", "olga", "o-pass", 200},
		{"operator report", "GET", "/ops/reports/w", "olga", "o-pass", 200},
		{"metrics", "GET", "/metrics", "", "", 200},
	}
	for _, tt := range tests {
		if got, body := do(tt.method, tt.path, tt.user, tt.pass); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d\n%.200s", tt.name, tt.method, tt.path, got, tt.want, body)
		}
	}
	if _, body := do("GET", "/metrics", "", ""); !strings.Contains(body, `ens_accounts{state="pending"}`) || !strings.Contains(body, "ens_import_rows_total") || !strings.Contains(body, `ens_letter_batches{state="overdue"}`) {
		t.Fatalf("metrics:\n%s", body)
	}
}
