package optout_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
)

// FuzzPublicRoutes: any method, path, forwarded-for header, content type
// and body on the public site or the agents' API gets an answer below 500
// (a hostile request is the client's error, never the server's).
func FuzzPublicRoutes(f *testing.F) {
	for _, s := range [][5]string{
		{"GET", "/", "", "", ""},
		{"GET", "/recu/ABCD1234.pdf", "198.51.100.7", "", ""},
		{"GET", "/recu/../../etc/passwd", "", "", ""},
		{"GET", "/recu/%00.pdf", "", "", ""}, // NUL and invalid UTF-8 once reached PostgreSQL: 500
		{"GET", "/recu/%FF.pdf", "", "", ""},
		{"POST", "/verifier", "::1, 2001:db8::1", "application/x-www-form-urlencoded", "code=ABCD-EFGH-JKMN&birth_date=15/03/1984"},
		{"POST", "/api/v1/oppositions", "not an address", "application/json", `{"code":"x","birth_date":"1984-03-15"}`},
		{"POST", "/agent", "", "application/json", `{"nir":"184037512345678","birth_date":"1984-03-15","identity_checked_by":"bob"}`},
		{"POST", "/agent", "", "application/json", `{"code":"ABCD-EFGH-JKMN","birth_date":"1984-03-15","received_on":"2026-13-01"}`},
		{"PUT", "/healthz", "", "text/plain", "\xff"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	pool := testdb.Pool(f)
	svc := newService(pool)
	svc.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	public := optout.NewHandler(svc)
	agent := optout.NewAgentHandler(svc, func(*http.Request) string { return "fuzz-agent" })
	f.Fuzz(func(t *testing.T, method, path, forwarded, contentType, body string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") {
			return
		}
		h := public
		if strings.HasPrefix(path, "/agent") {
			h = agent
		}
		req, err := http.NewRequest(method, "http://ens.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "192.0.2.10:4242"
		if forwarded != "" && !strings.ContainsAny(forwarded, "\r\n") {
			req.Header.Set("X-Forwarded-For", forwarded)
		}
		if contentType != "" && !strings.ContainsAny(contentType, "\r\n") {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s (%q, %q, %q): %d", method, path, forwarded, contentType, body, rec.Code)
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}
