package serve

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fireact/fireact/llama"
)

// latencyBuckets are the upper bounds (seconds) of the request latency
// histogram: from a cached short completion to a long agent run.
var latencyBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// histogram is a cumulative-bucket latency histogram in Prometheus' sense.
type histogram struct {
	counts [len(latencyBuckets) + 1]int64 // last: +Inf
	sum    float64
	n      int64
}

func (h *histogram) observe(sec float64) {
	i := sort.SearchFloat64s(latencyBuckets[:], sec)
	h.counts[i]++
	h.sum += sec
	h.n++
}

type endpointStatus struct {
	endpoint string
	status   int
}

// metrics are the server's counters, rendered in the Prometheus text format
// by hand: a handful of series do not justify a client library dependency.
type metrics struct {
	mu        sync.Mutex
	requests  map[endpointStatus]int64
	latency   map[string]*histogram
	inFlight  atomic.Int64
	prompt    atomic.Int64
	generated atomic.Int64
	rejected  atomic.Int64 // generation requests refused because the queue was full
}

func newMetrics() *metrics {
	return &metrics{requests: map[endpointStatus]int64{}, latency: map[string]*histogram{}}
}

func (m *metrics) record(endpoint string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[endpointStatus{endpoint, status}]++
	h := m.latency[endpoint]
	if h == nil {
		h = &histogram{}
		m.latency[endpoint] = h
	}
	h.observe(d.Seconds())
}

func (m *metrics) addTokens(prompt, generated int) {
	m.prompt.Add(int64(prompt))
	m.generated.Add(int64(generated))
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// write renders every series; the engine's counters are read at scrape time.
func (m *metrics) write(w io.Writer, engine llama.EngineStats, slots int, uptime time.Duration) error {
	m.mu.Lock()
	keys := make([]endpointStatus, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].endpoint != keys[j].endpoint {
			return keys[i].endpoint < keys[j].endpoint
		}
		return keys[i].status < keys[j].status
	})
	eps := make([]string, 0, len(m.latency))
	for ep := range m.latency {
		eps = append(eps, ep)
	}
	sort.Strings(eps)

	var b []byte
	p := func(format string, args ...any) { b = fmt.Appendf(b, format, args...) }
	p("# HELP fireact_http_requests_total HTTP requests by endpoint and status code.\n")
	p("# TYPE fireact_http_requests_total counter\n")
	for _, k := range keys {
		p("fireact_http_requests_total{endpoint=%q,code=\"%d\"} %d\n", k.endpoint, k.status, m.requests[k])
	}
	p("# HELP fireact_http_request_duration_seconds HTTP request latency by endpoint.\n")
	p("# TYPE fireact_http_request_duration_seconds histogram\n")
	for _, ep := range eps {
		h := m.latency[ep]
		var cum int64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			p("fireact_http_request_duration_seconds_bucket{endpoint=%q,le=%q} %d\n", ep, formatFloat(le), cum)
		}
		cum += h.counts[len(latencyBuckets)]
		p("fireact_http_request_duration_seconds_bucket{endpoint=%q,le=\"+Inf\"} %d\n", ep, cum)
		p("fireact_http_request_duration_seconds_sum{endpoint=%q} %s\n", ep, formatFloat(h.sum))
		p("fireact_http_request_duration_seconds_count{endpoint=%q} %d\n", ep, h.n)
	}
	m.mu.Unlock()

	p("# HELP fireact_http_requests_in_flight Requests being served.\n")
	p("# TYPE fireact_http_requests_in_flight gauge\n")
	p("fireact_http_requests_in_flight %d\n", m.inFlight.Load())
	p("# HELP fireact_requests_rejected_total Generation requests answered 503 because the wait queue was full.\n")
	p("# TYPE fireact_requests_rejected_total counter\n")
	p("fireact_requests_rejected_total %d\n", m.rejected.Load())
	p("# HELP fireact_prompt_tokens_total Prompt tokens of served completions.\n")
	p("# TYPE fireact_prompt_tokens_total counter\n")
	p("fireact_prompt_tokens_total %d\n", m.prompt.Load())
	p("# HELP fireact_completion_tokens_total Generated tokens of served completions.\n")
	p("# TYPE fireact_completion_tokens_total counter\n")
	p("fireact_completion_tokens_total %d\n", m.generated.Load())
	for _, c := range []struct {
		name, help string
		v          int64
	}{
		{"fireact_engine_requests_total", "Generations the engine finished.", engine.Requests},
		{"fireact_engine_prompt_tokens_total", "Prompt tokens submitted to the engine.", engine.PromptTokens},
		{"fireact_engine_prompt_tokens_decoded_total", "Prompt tokens the engine decoded.", engine.PromptDecoded},
		{"fireact_engine_prompt_tokens_reused_total", "Prompt tokens served from cached KV cells.", engine.PromptReused},
		{"fireact_engine_generated_tokens_total", "Tokens the engine generated.", engine.GeneratedTokens},
		{"fireact_engine_decodes_total", "llama_decode calls.", engine.Decodes},
	} {
		p("# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v)
	}
	p("# HELP fireact_engine_slots Sequences the engine decodes together.\n")
	p("# TYPE fireact_engine_slots gauge\n")
	p("fireact_engine_slots %d\n", slots)
	p("# HELP fireact_uptime_seconds Seconds since the server started.\n")
	p("# TYPE fireact_uptime_seconds gauge\n")
	p("fireact_uptime_seconds %s\n", formatFloat(uptime.Seconds()))
	_, err := w.Write(b)
	return err
}
