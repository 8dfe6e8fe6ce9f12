package ops

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/optout"
)

// describer collects the names of the metrics registered with it.
type describer map[string]bool

var fqName = regexp.MustCompile(`fqName: "([a-z_]+)"`)

func (d describer) describe(c prometheus.Collector) {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		d[fqName.FindStringSubmatch(desc.String())[1]] = true
	}
}

func (d describer) Register(c prometheus.Collector) error { d.describe(c); return nil }
func (d describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.describe(c)
	}
}
func (d describer) Unregister(prometheus.Collector) bool { return false }

// Every metric the alerting rules and the dashboard read is one ens
// exports: `ens serve`'s figures from the database and its site's traffic,
// or a worker's own. A renamed metric would leave an alert that never fires
// and a panel that stays empty.
func TestMonitoringReadsExportedMetrics(t *testing.T) {
	exported := describer{}
	exported.describe(&collector{})
	exported.describe(optout.NewMetrics())
	jobs.NewMetrics(exported)
	for file, wants := range map[string][]string{
		"alerts.yml":     {"ens_smtp_relay_up", "ens_activations_withheld", "ens_job_queue_latency_seconds", "ens_letter_batches", "ens_form_requests_total"},
		"dashboard.json": {"ens_notices", "ens_accounts", "ens_letter_batches", "ens_form_requests_total", "ens_job_queue_latency_seconds"},
	} {
		t.Run(file, func(t *testing.T) {
			text, err := os.ReadFile("../../docs/monitoring/" + file)
			if err != nil {
				t.Fatal(err)
			}
			var used []string
			for _, name := range regexp.MustCompile(`\bens_[a-z_]+`).FindAllString(string(text), -1) {
				base := regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(name, "")
				if !exported[name] && !exported[base] {
					t.Errorf("%s reads %s, which ens does not export", file, name)
				}
				used = append(used, base)
			}
			for _, want := range wants {
				if !slices.Contains(used, want) {
					t.Errorf("%s never reads %s", file, want)
				}
			}
		})
	}
}
