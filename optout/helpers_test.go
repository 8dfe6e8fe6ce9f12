package optout_test

import (
	"net/http"
	"net/http/httptest"
)

func newHTTPServer(t interface {
	Cleanup(func())
}, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
