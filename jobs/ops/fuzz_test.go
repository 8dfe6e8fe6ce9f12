package ops_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzOpsArea: any method, path, credentials, origin and body on the ops
// area (sign-in, River UI and its API, reports, the agents' API, /metrics)
// gets an answer below 500.
func FuzzOpsArea(f *testing.F) {
	for _, s := range [][6]string{
		{"GET", "/ops/", "adam", "a-pass", "", ""},
		{"GET", "/ops/reports/w?format=pdf", "adam", "a-pass", "", ""},
		{"GET", "/ops/reports/%00?format=csv", "olga", "o-pass", "", ""},
		{"POST", "/ops/river/api/jobs/cancel", "olga", "o-pass", "", `{"ids":["1","x",-3]}`},
		{"POST", "/ops/river/api/jobs/delete", "olga", "o-pass", "https://evil.example", `{"ids":[99999999999999999999]}`},
		{"PUT", "/ops/river/api/queues/notices/pause", "olga", "o-pass", "", ""},
		{"POST", "/ops/api/v1/oppositions", "alice", "c-pass", "", `{"nir":"1","birth_date":"x"}`},
		{"GET", "/metrics", "alice", "c-pass", "", ""},
		{"GET", "/ops/", "olga\x00", "\xff", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	a := newArea(f, nil)
	f.Fuzz(func(t *testing.T, method, path, user, pass, origin, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		req, err := http.NewRequest(method, "http://ops.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if origin != "" && !strings.ContainsAny(origin, "\r\n") {
			req.Header.Set("Origin", origin)
		}
		req.Header.Set("Content-Type", "application/json")
		// From many addresses, so that failed sign-ins do not turn every
		// later input into a 429.
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4242", len(path)%256, len(user)%256, len(body)%256)
		rec := httptest.NewRecorder()
		a.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s as %q (origin %q, body %q): %d %s", method, path, user, origin, body, rec.Code, rec.Body.String())
		}
	})
}
