package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ens-sante/ens/jobs"
)

// workerHealth answers an orchestrator's probes of a long-running worker:
// /healthz (the process is up and its River client running), /readyz (the
// database answers, and the SMTP relay when the worker sends email), and the
// worker's own /metrics.
type workerHealth struct {
	deps    *jobs.Deps
	reg     *prometheus.Registry
	running atomic.Bool
}

// newWorkerHealth measures deps' jobs, emails and letters for the worker's
// /metrics, beside the process's own figures.
func newWorkerHealth(deps *jobs.Deps) *workerHealth {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	deps.Metrics = jobs.NewMetrics(reg)
	return &workerHealth{deps: deps, reg: reg}
}

func (h *workerHealth) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.running.Load() {
			http.Error(w, "the job client is not running", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		switch {
		case !h.running.Load():
			http.Error(w, "the job client is not running", http.StatusServiceUnavailable)
		case h.deps.Pool.Ping(ctx) != nil:
			http.Error(w, "the database does not answer", http.StatusServiceUnavailable)
		case h.deps.Mailer != nil && !h.deps.Mailer.RelayState().Up:
			http.Error(w, "the SMTP relay is down: sending is paused", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	return mux
}

// serveHealth serves the probes on addr until ctx ends.
func (a *app) serveHealth(ctx context.Context, addr string, h *workerHealth) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for health probes on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("health probes stopped", "error", err)
		}
	}()
	a.log.Info("health probes listening", "addr", ln.Addr().String())
	return nil
}
