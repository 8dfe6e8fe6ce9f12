package optout_test

import (
	"context"

	"net/http"
	"net/http/httptest"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
)

var noJobs provisioning.EnqueueFunc = func(context.Context, pgx.Tx, []provisioning.Chunk) error { return nil }

func newHTTPServer(t interface {
	Cleanup(func())
}, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
