// Package metrics exports berth's Prometheus metrics and serves them with
// the agent's health and readiness over HTTP.
//
// A [Metrics] keeps its own registry, never the global default. Its
// methods are the hooks that control, journal and actors call; they are safe
// for concurrent use, cheap, and do nothing on a nil *Metrics.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berthhq/berth/events"
)

// Metrics holds berth's metric families.
type Metrics struct {
	reg        *prometheus.Registry
	commands   *prometheus.CounterVec
	cmdLatency *prometheus.HistogramVec
	appendLat  prometheus.Histogram
	batchSize  prometheus.Histogram
	hostLat    *prometheus.HistogramVec
	reconciles *prometheus.CounterVec
	logDrops   *prometheus.CounterVec
}

// New returns metrics registered in a registry of their own, with the Go
// runtime and process collectors beside berth's families.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_commands_total", Help: "Commands answered, by verb and reply code (200 for success).",
		}, []string{"verb", "code"}),
		cmdLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_command_duration_seconds", Help: "Time from a command's intake to its reply, by verb.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"verb"}),
		appendLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_journal_append_duration_seconds", Help: "Time to commit one batch of events to the journal.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 12),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_journal_batch_events", Help: "Events per batch committed to the journal.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		hostLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_host_operation_duration_seconds", Help: "Time the host took for one operation, by operation and outcome (ok or error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"op", "outcome"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_reconcile_actions_total", Help: "Reconcile actions after a start, by kind (adopt, mark_exited, ...) and outcome (ok, error, timeout).",
		}, []string{"kind", "outcome"}),
		logDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_log_dropped_bytes_total", Help: "Container output not kept, by reason: over the per-container rate limit (rate), or the log stream not keeping up (stall).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.commands, m.cmdLatency, m.appendLat, m.batchSize, m.hostLat, m.reconciles, m.logDrops,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gatherer returns the registry the metrics are in, for programs that
// read them without the HTTP endpoint.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// ObserveCommand counts a command answered with code and records its
// latency. It satisfies control.Observer.
func (m *Metrics) ObserveCommand(verb string, code int, took time.Duration) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(verb, strconv.Itoa(code)).Inc()
	m.cmdLatency.WithLabelValues(verb).Observe(took.Seconds())
}

// ObserveCommit records one journal batch; it fits journal.Config.OnCommit.
func (m *Metrics) ObserveCommit(n int, took time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(n))
	m.appendLat.Observe(took.Seconds())
}

// ObserveHostCall records one host operation; it fits
// actors.Config.OnHostCall.
func (m *Metrics) ObserveHostCall(op string, took time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.hostLat.WithLabelValues(op, outcome).Observe(took.Seconds())
}

// ObserveReconcile counts one reconcile action; it fits
// actors.Config.OnReconcile.
func (m *Metrics) ObserveReconcile(kind events.ActionKind, outcome string) {
	if m == nil {
		return
	}
	m.reconciles.WithLabelValues(string(kind), outcome).Inc()
}

// ObserveLogDrop counts n bytes of container output dropped for reason
// ("rate" or "stall"); it fits journal.Config.OnLogDrop.
func (m *Metrics) ObserveLogDrop(reason string, n int) {
	if m == nil {
		return
	}
	m.logDrops.WithLabelValues(reason).Add(float64(n))
}

// StateFunc returns a consistent copy of the node's fold.
type StateFunc func(ctx context.Context) (*events.State, error)

// WatchContainers registers berth_containers, the node's containers by
// phase, read from state on each scrape (bounded to 5 s). A scrape whose
// state call fails, as it does once the agent stops, leaves the family out
// and still serves the others. Call it at most once.
func (m *Metrics) WatchContainers(state StateFunc) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&phaseCollector{state: state, desc: prometheus.NewDesc(
		"berth_containers", "Containers on the node, by phase.", []string{"phase"}, nil)})
}

type phaseCollector struct {
	state StateFunc
	desc  *prometheus.Desc
}

func (c *phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.state(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := map[string]int{}
	for _, ct := range st.Containers {
		counts[string(ct.Phase)]++
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), phase)
	}
}

// Handler serves /metrics from m's registry (none when m is nil), /healthz
// (200 while the process runs) and /readyz (200 when ready returns true,
// else 503).
func Handler(m *Metrics, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}
