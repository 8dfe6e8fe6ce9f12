package ops

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricsTTL is how long a scrape's figures are served again: the queries
// count the largest tables, and a flood of scrapes must cost one of them
// every few seconds, not one each.
const metricsTTL = 5 * time.Second

// metricsAccess lets the networks of ENS_METRICS_ALLOW scrape without
// signing in — the client as a trusted proxy reports it, so that allowing
// a proxy never opens /metrics to everyone behind it; anyone else signs in
// as an auditor (or operator).
func (h *Handler) metricsAccess(next http.Handler) http.Handler {
	signedIn := h.auth(RoleAuditor, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := h.svc.ClientIP(r); ok {
			for _, p := range h.allow {
				if p.Contains(a) {
					next.ServeHTTP(w, r)
					return
				}
			}
		}
		signedIn.ServeHTTP(w, r)
	})
}

// cachedGatherer gathers at most once per ttl; concurrent scrapes during a
// gathering wait for it rather than start their own.
type cachedGatherer struct {
	g   prometheus.Gatherer
	ttl time.Duration

	mu   sync.Mutex
	at   time.Time
	mfs  []*dto.MetricFamily
	errs error
}

func newCachedGatherer(g prometheus.Gatherer, ttl time.Duration) *cachedGatherer {
	return &cachedGatherer{g: g, ttl: ttl}
}

// Gather implements prometheus.Gatherer.
func (c *cachedGatherer) Gather() ([]*dto.MetricFamily, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mfs == nil || time.Since(c.at) >= c.ttl {
		c.mfs, c.errs = c.g.Gather()
		c.at = time.Now()
	}
	return c.mfs, c.errs
}

// collector reads its figures from the database at each scrape, so that
// every worker and server process contributes and restarts lose nothing.
type collector struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	sla  time.Duration // ENS_POSTING_SLA
}

var (
	descNotices     = prometheus.NewDesc("ens_notices", "Notices by channel and status.", []string{"channel", "status"}, nil)
	descOppositions = prometheus.NewDesc("ens_oppositions", "Standing oppositions by channel.", []string{"channel"}, nil)
	descWithdrawn   = prometheus.NewDesc("ens_oppositions_withdrawn", "Oppositions withdrawn within the window.", nil, nil)
	descAccounts    = prometheus.NewDesc("ens_accounts", "Accounts by state.", []string{"state"}, nil)
	descJobs        = prometheus.NewDesc("ens_river_jobs", "River jobs by kind and state (finished jobs are kept 24 hours).", []string{"kind", "state"}, nil)
	descImportRows  = prometheus.NewDesc("ens_import_rows_total", "Registry rows imported, by outcome.", []string{"outcome"}, nil)
	descBatches     = prometheus.NewDesc("ens_letter_batches", "Letter batches by posting state (overdue: unacknowledged past ENS_POSTING_SLA).", []string{"state"}, nil)
	descEnrolment   = prometheus.NewDesc("ens_enrolment_enabled", "1 while continuous enrolment is on.", nil, nil)
	descRelayUp     = prometheus.NewDesc("ens_smtp_relay_up", "1 when the worker's SMTP relay answers, 0 while its sending is paused.", []string{"worker"}, nil)
	descFeedSeq     = prometheus.NewDesc("ens_platform_feed_sequence", "The change feed's last sequence.", nil, nil)
	descFeedLag     = prometheus.NewDesc("ens_platform_feed_lag", "Changes the platform has not acknowledged yet (when the feed is pushed).", nil, nil)
	descPushFail    = prometheus.NewDesc("ens_platform_push_failures", "Consecutive failed pushes of the change feed.", nil, nil)
	descPushAge     = prometheus.NewDesc("ens_platform_push_age_seconds", "Seconds since the platform last acknowledged a push.", nil, nil)
	descRelaySince  = prometheus.NewDesc("ens_smtp_relay_since_timestamp_seconds", "When the worker's SMTP relay last changed state (up or paused), as a Unix time.", []string{"worker"}, nil)
	descBounces     = prometheus.NewDesc("ens_bounce_reports_total", "Bounce reports read, by outcome: permanent, temporary, success, not_a_report, not_ours (not believed), unreadable.", []string{"outcome"}, nil)
	descAnchorAge   = prometheus.NewDesc("ens_audit_anchor_age_seconds", "Seconds since the audit log's head was last anchored (ens audit anchor).", nil, nil)
	descWithheld    = prometheus.NewDesc("ens_activations_withheld", "Notified accounts past their deadline the window sweep does not activate, by reason: "+
		"in_grace (ENS_ACTIVATION_GRACE), letter_not_posted, no_proof_of_dispatch, no_code.", []string{"reason"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNotices, descOppositions, descWithdrawn, descAccounts, descJobs, descImportRows, descRelayUp, descBatches,
		descEnrolment, descFeedSeq, descFeedLag, descPushFail, descPushAge, descWithheld, descRelaySince, descBounces, descAnchorAge} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gauge := func(desc *prometheus.Desc, q string, labels int, vt prometheus.ValueType) {
		rows, err := c.pool.Query(ctx, q)
		if err != nil {
			c.log.Error("collecting metrics", "error", err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			vals := make([]string, labels)
			var n float64
			ptrs := make([]any, 0, labels+1)
			for i := range vals {
				ptrs = append(ptrs, &vals[i])
			}
			if err := rows.Scan(append(ptrs, &n)...); err != nil {
				c.log.Error("collecting metrics", "error", err)
				return
			}
			ch <- prometheus.MustNewConstMetric(desc, vt, n, vals...)
		}
	}
	gauge(descNotices, `SELECT channel, status, count(*)::float8 FROM notice GROUP BY 1, 2`, 2, prometheus.GaugeValue)
	// Every channel, zero included: a panel or a rule reads a series that exists.
	gauge(descOppositions, `SELECT c, count(o.id)::float8 FROM unnest('{web,api,agent}'::text[]) c
		LEFT JOIN opposition o ON o.channel = c AND o.undone_at IS NULL GROUP BY 1`, 1, prometheus.GaugeValue)
	gauge(descWithdrawn, `SELECT count(*)::float8 FROM opposition WHERE undone_at IS NOT NULL`, 0, prometheus.GaugeValue)
	gauge(descAccounts, `SELECT s.state, count(a.id)::float8 FROM account_state s LEFT JOIN account a ON a.state = s.state GROUP BY 1`, 1, prometheus.GaugeValue)
	gauge(descJobs, `SELECT kind, state::text, count(*)::float8 FROM river_job GROUP BY 1, 2`, 2, prometheus.GaugeValue)
	gauge(descImportRows, `SELECT o, sum(n)::float8 FROM registry_import,
		LATERAL (VALUES ('read', read), ('accepted', accepted), ('rejected', rejected), ('inserted', inserted), ('updated', updated)) v(o, n) GROUP BY 1`, 1, prometheus.CounterValue)
	gauge(descRelayUp, `SELECT worker, up::int::float8 FROM smtp_relay`, 1, prometheus.GaugeValue)
	gauge(descRelaySince, `SELECT worker, extract(epoch FROM since)::float8 FROM smtp_relay`, 1, prometheus.GaugeValue)
	gauge(descBounces, `SELECT o, coalesce(b.reports, 0)::float8 FROM unnest('{permanent,temporary,success,not_a_report,not_ours,unreadable}'::text[]) o
		LEFT JOIN bounce_reading b ON b.outcome = o`, 1, prometheus.CounterValue)
	gauge(descAnchorAge, `SELECT extract(epoch FROM now() - taken_at)::float8 FROM audit_anchor_taken`, 0, prometheus.GaugeValue)
	gauge(descEnrolment, `SELECT count(*)::float8 FROM setting WHERE name = 'enrolment' AND value = 'on'`, 0, prometheus.GaugeValue)
	gauge(descFeedSeq, `SELECT seq::float8 FROM account_feed_head`, 0, prometheus.GaugeValue)
	gauge(descWithheld, fmt.Sprintf(`SELECT r, count(a.id)::float8 FROM (VALUES ('in_grace'), ('letter_not_posted'), ('no_proof_of_dispatch'), ('no_code')) v(r)
		LEFT JOIN (SELECT a.id, CASE
				WHEN a.code_hash IS NULL THEN 'no_code'
				WHEN EXISTS (SELECT 1 FROM notice n WHERE n.account_id = a.id AND n.kind = 'opposition' AND n.seq = a.notice_round
				             AND n.channel = 'letter' AND n.status IN ('pending', 'printed')) THEN 'letter_not_posted'
				WHEN NOT (%s) THEN 'no_proof_of_dispatch'
				ELSE 'in_grace' END AS r
			FROM account a WHERE a.state = 'notified' AND a.deadline < now()) a USING (r) GROUP BY 1`, notice.InformedProof),
		1, prometheus.GaugeValue)
	gauge(descFeedLag, `SELECT (h.seq - p.acked_seq)::float8 FROM account_feed_head h, platform_push p`, 0, prometheus.GaugeValue)
	gauge(descPushFail, `SELECT failures::float8 FROM platform_push`, 0, prometheus.GaugeValue)
	gauge(descPushAge, `SELECT extract(epoch FROM now() - acked_at)::float8 FROM platform_push WHERE acked_at IS NOT NULL`, 0, prometheus.GaugeValue)
	gauge(descBatches, fmt.Sprintf(`SELECT s, count(b.id)::float8 FROM (VALUES ('rendered'), ('posted'), ('overdue'), ('withdrawn')) v(s)
		LEFT JOIN letter_batch b ON s = CASE WHEN b.posted_on IS NOT NULL THEN 'posted' WHEN b.withdrawn_at IS NOT NULL THEN 'withdrawn'
			WHEN b.rendered_at < now() - interval '%d seconds' THEN 'overdue' ELSE 'rendered' END GROUP BY 1`, int64(c.sla.Seconds())),
		1, prometheus.GaugeValue)
}
