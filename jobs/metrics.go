package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Metrics are a worker's own measures of its work, exported on its
// /metrics: how long each job took and waited, by kind, and what its emails
// and letters came to. Labels are bounded (job kinds and outcomes): never a
// person, an address or a code. A nil *Metrics measures nothing.
type Metrics struct {
	duration *prometheus.HistogramVec
	latency  *prometheus.HistogramVec
	emails   *prometheus.CounterVec
	letters  prometheus.Counter
}

// NewMetrics registers a worker's measures with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ens_job_duration_seconds",
			Help: "Time a job's work took, by kind and outcome (completed, snoozed, cancelled, failed).",
			// A chunk takes a second or a few; a department's letters or a
			// window sweep can take minutes.
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ens_job_queue_latency_seconds",
			Help: "Time a job waited between becoming due and being taken by a worker, by kind.",
			// From a fetch cooldown's 50 ms to a backlog of hours.
			Buckets: []float64{.05, .1, .25, .5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600},
		}, []string{"kind"}),
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ens_emails_total",
			Help: "Email notices handed to the relay, by outcome: accepted, temporary (retried), permanent or exhausted (switched to a letter).",
		}, []string{"outcome"}),
		letters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ens_letters_rendered_total",
			Help: "Letters rendered into printer batches.",
		}),
	}
	for _, o := range []string{"accepted", "temporary", "permanent", "exhausted"} {
		m.emails.WithLabelValues(o) // exported at zero from the start, so rates exist
	}
	reg.MustRegister(m.duration, m.latency, m.emails, m.letters)
	return m
}

// middleware times every job a client works.
func (m *Metrics) middleware() rivertype.WorkerMiddleware {
	return river.WorkerMiddlewareFunc(func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
		start := time.Now()
		if job.AttemptedAt != nil {
			m.latency.WithLabelValues(job.Kind).Observe(max(0, job.AttemptedAt.Sub(job.ScheduledAt).Seconds()))
		}
		err := doInner(ctx)
		m.duration.WithLabelValues(job.Kind, jobOutcome(err)).Observe(time.Since(start).Seconds())
		return err
	})
}

// jobOutcome names what a job's error means to River.
func jobOutcome(err error) string {
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	switch {
	case err == nil:
		return "completed"
	case errors.As(err, &snooze):
		return "snoozed"
	case errors.As(err, &cancel):
		return "cancelled"
	default:
		return "failed"
	}
}

// countEmails adds a chunk's sending outcome.
func (m *Metrics) countEmails(res sendOutcome) {
	if m == nil {
		return
	}
	m.emails.WithLabelValues("accepted").Add(float64(res.sent))
	m.emails.WithLabelValues("temporary").Add(float64(res.temporary))
	m.emails.WithLabelValues("permanent").Add(float64(len(res.permanent)))
	m.emails.WithLabelValues("exhausted").Add(float64(len(res.exhausted)))
}

// countLetters adds a render's letters.
func (m *Metrics) countLetters(n int) {
	if m == nil {
		return
	}
	m.letters.Add(float64(n))
}
