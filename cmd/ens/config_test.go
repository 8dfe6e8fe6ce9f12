package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runEnv runs ens with env set (the test's environment otherwise), outside
// any database: the configuration is refused before one is needed.
func runEnv(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// A value ens cannot read stops the command with exit 2 and names the
// variable, instead of a silent default (before: ENS_SMTP_RATE=abc meant "no
// cap", ENS_EMAIL_GIVE_UP_AFTER=5d meant 72 hours, and the worker started).
func TestConfigRefusesWhatItCannotRead(t *testing.T) {
	for _, tc := range []struct {
		name, variable, value string
		args                  []string
	}{
		{name: "a rate that is not a number", variable: "ENS_SMTP_RATE", value: "abc", args: []string{"worker"}},
		{name: "a duration in words", variable: "ENS_EMAIL_GIVE_UP_AFTER", value: "five days", args: []string{"worker"}},
		{name: "a negative delay", variable: "ENS_DELIVERY_DELAY", value: "-1d", args: []string{"letters", "batches"}},
		{name: "no notice worker", variable: "ENS_NOTICE_WORKERS", value: "0", args: []string{"worker"}},
		{name: "enrolment neither on nor off", variable: "ENS_ENROL", value: "yes", args: []string{"enrol"}},
		{name: "a proxy that is no address", variable: "ENS_TRUSTED_PROXIES", value: "proxy.internal", args: []string{"serve"}},
		{name: "a log format nobody reads", variable: "ENS_LOG_FORMAT", value: "xml", args: []string{"config"}},
		{name: "a code key too short", variable: "ENS_CODE_KEY", value: "abcd", args: []string{"config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runEnv(t, map[string]string{tc.variable: tc.value, "DATABASE_URL": "postgres://127.0.0.1:1/none"}, tc.args...)
			if code != 2 || !strings.Contains(errs, tc.variable+":") || !strings.Contains(errs, "for example") {
				t.Fatalf("%s=%q ens %v: exit %d, stderr %q; want exit 2 naming %s with an example", tc.variable, tc.value, tc.args, code, errs, tc.variable)
			}
		})
	}
}

// A worker prints letters, so it does not start without the postal address
// for refusals and the data protection officer's contact: exit 2 naming
// each, before it touches the database. (Before: every letter printed a
// placeholder address, "TSA 12345, 75000 PARIS", and no contact at all.)
func TestWorkerNeedsWhatEveryLetterPrints(t *testing.T) {
	for _, missing := range []string{"ENS_REFUSAL_ADDRESS", "ENS_DPO_CONTACT"} {
		t.Run(missing, func(t *testing.T) {
			code, _, errs := runEnv(t, map[string]string{missing: "", "DATABASE_URL": "postgres://127.0.0.1:1/none"}, "worker")
			if code != 2 || !strings.Contains(errs, missing+" is not set") || !strings.Contains(errs, "for example") {
				t.Fatalf("ens worker without %s: exit %d, stderr %q; want exit 2 naming it with an example", missing, code, errs)
			}
		})
	}
}

// ens config shows what a machine will do, in the one duration syntax, and
// never a secret.
func TestConfigShowsTheEffectiveValues(t *testing.T) {
	code, out, errs := runEnv(t, map[string]string{
		"ENS_EMAIL_GIVE_UP_AFTER": "5d",
		"ENS_DELIVERY_DELAY":      "0s",
		"ENS_POST_DELAY":          "72h",
		"DATABASE_URL":            "postgres://ens_app:hunter2@db.internal/ens",
		"SMTP_URL":                "smtp://relay:s3cret@relay.internal:587",
		"ENS_CODE_KEY":            strings.Repeat("ab", 32),
		"ENS_OPS_USERS":           "alice:operator:$2a$10$abcdefghijklmnopqrstuv",
	}, "config", "--json", "--var-dir", "/srv/ens")
	if code != 0 {
		t.Fatalf("ens config: exit %d: %s", code, errs)
	}
	var settings []setting
	if err := json.Unmarshal([]byte(out), &settings); err != nil {
		t.Fatal(err)
	}
	got := map[string]setting{}
	for _, s := range settings {
		got[s.Variable] = s
	}
	for _, want := range []setting{
		{Variable: "ENS_EMAIL_GIVE_UP_AFTER", Value: "5d", Source: "environment"},
		{Variable: "ENS_DELIVERY_DELAY", Value: "0s", Source: "environment"},
		{Variable: "ENS_POST_DELAY", Flag: "--post-delay", Value: "3d", Source: "environment"},
		{Variable: "ENS_POSTING_SLA", Value: "3d", Source: "default"},
		{Variable: "ENS_VAR_DIR", Flag: "--var-dir", Value: "/srv/ens", Source: "flag"},
		{Variable: "ENS_CODE_KEY", Value: "set (32 bytes)", Source: "environment"},
		{Variable: "ENS_AUDIT_KEY", Value: "", Source: "default"},
	} {
		if g := got[want.Variable]; g != want {
			t.Errorf("%s: got %+v, want %+v", want.Variable, g, want)
		}
	}
	for _, secret := range []string{"hunter2", "s3cret", strings.Repeat("ab", 32), "abcdefghijklmnopqrstuv"} {
		if strings.Contains(out, secret) {
			t.Errorf("ens config prints a secret (%s):\n%s", secret, out)
		}
	}
}

// A key file others may read is refused, with the chmod that mends it.
func TestKeyFileReadableByOthersIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "code.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runEnv(t, map[string]string{"ENS_CODE_KEY_FILE": path}, "config")
	if code != 2 || !strings.Contains(errs, "chmod 600 "+path) {
		t.Fatalf("a world-readable key file: exit %d, stderr %q; want exit 2 and the chmod to run", code, errs)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runEnv(t, map[string]string{"ENS_CODE_KEY_FILE": path}, "config"); code != 0 || !strings.Contains(out, "set from "+path) {
		t.Fatalf("the same file, mode 0600: exit %d: %s%s", code, out, errs)
	}
}

// The documented variables are exactly those ens reads, and only the
// configuration reads them: none documented and unread, none read and
// undocumented.
func TestConfigurationIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	var read []string
	for _, v := range variables {
		read = append(read, v.name)
	}
	slices.Sort(documented)
	slices.Sort(read)
	if !slices.Equal(documented, read) {
		t.Errorf("docs/configuration.md documents %v\nens reads %v", documented, read)
	}
	// Nothing else in the product reads the environment.
	getenv := regexp.MustCompile(`os\.(Getenv|LookupEnv)\("((ENS|SMTP|DATABASE)_[A-Z_]+)"\)`)
	mention := regexp.MustCompile(`"((ENS|SMTP|DATABASE)_[A-Z_]+)`)
	for _, dir := range []string{".", "../../jobs", "../../jobs/ops", "../../notify", "../../optout", "../../provisioning"} {
		files, _ := filepath.Glob(filepath.Join(dir, "**.go"))
		sub, _ := filepath.Glob(filepath.Join(dir, "*", "*.go"))
		for _, f := range append(files, sub...) {
			if strings.HasSuffix(f, "_test.go") || filepath.Base(f) == "config.go" {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range getenv.FindAllStringSubmatch(string(src), -1) {
				t.Errorf("%s reads %s itself: read it in cmd/ens/config.go", f, m[2])
			}
			for _, m := range mention.FindAllStringSubmatch(string(src), -1) {
				if !slices.Contains(read, m[1]) && !strings.HasSuffix(m[1], "_") {
					t.Errorf("%s mentions %s, which ens does not read", f, m[1])
				}
			}
		}
	}
}
