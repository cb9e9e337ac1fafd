package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/fireact/fireact/store"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingTool answers "obs:<query>" and counts its calls.
type countingTool struct{ calls atomic.Int64 }

func (c *countingTool) Call(_ context.Context, action, arg string) (Observation, error) {
	c.calls.Add(1)
	return Observation{Text: "obs:" + arg}, nil
}

// TestNoiseRateAndReproducibility runs 1,000 noisy calls concurrently with
// p=0.5 and checks the applied rate and that the same seed reproduces exactly.
func TestNoiseRateAndReproducibility(t *testing.T) {
	var pool []store.CacheEntry
	for _, q := range []string{"q1", "q2", "q3", "q4"} {
		pool = append(pool, store.CacheEntry{Backend: "local:wiki", Query: q, Result: "obs:" + q})
	}
	run := func(seed int64) []Observation {
		n := &Noise{Inner: &countingTool{}, P: 0.5, Seed: seed, Kind: NoiseMixed, Pool: pool}
		out := make([]Observation, 1000)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < 1000; i += 8 {
					ctx := WithCallSite(context.Background(), CallSite{Episode: fmt.Sprintf("hotpotqa/dev/%d", i/10), Step: i % 10})
					o, err := n.Call(ctx, "search", fmt.Sprintf("query %d", i))
					if err != nil {
						t.Error(err)
					}
					out[i] = o
				}
			}(w)
		}
		wg.Wait()
		return out
	}
	a, b, c := run(42), run(42), run(43)
	applied, none, swap := 0, 0, 0
	for i, o := range a {
		if o != b[i] {
			t.Fatalf("call %d differs between runs with the same seed: %+v vs %+v", i, o, b[i])
		}
		switch {
		case o.Noise == "":
			if o.Text != fmt.Sprintf("obs:query %d", i) {
				t.Fatalf("clean call %d observed %q", i, o.Text)
			}
		case o.Noise == "none":
			applied++
			none++
			if o.Text != NoneObservation {
				t.Fatalf("none noise with text %q", o.Text)
			}
		case strings.HasPrefix(o.Noise, "random:"):
			applied++
			swap++
			if o.Text != "obs:"+strings.TrimPrefix(o.Noise, "random:") {
				t.Fatalf("swap noise %q with text %q", o.Noise, o.Text)
			}
		default:
			t.Fatalf("unknown noise %q", o.Noise)
		}
	}
	rate := float64(applied) / 1000
	if rate < 0.45 || rate > 0.55 {
		t.Fatalf("applied noise rate %.3f, want 0.5±0.05", rate)
	}
	if none < 150 || swap < 150 {
		t.Fatalf("none %d / swap %d: both kinds should be common", none, swap)
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same == 1000 {
		t.Fatal("a different seed gave the same noise")
	}
	t.Logf("rate %.3f (none %d, swap %d)", rate, none, swap)
}

// TestCacheAndReplay checks that cache hits do not call the backend and that
// replay answers only from the cache.
func TestCacheAndReplay(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	inner := &countingTool{}
	c := &Cache{Inner: inner, Store: s, Backend: "serpapi"}
	for i, q := range []string{"Paris", "paris ", "PARIS", "London"} {
		o, err := c.Call(ctx, "search", q)
		if err != nil {
			t.Fatal(err)
		}
		wantCached := i == 1 || i == 2
		if o.Cached != wantCached {
			t.Fatalf("call %d (%q): cached %v, want %v", i, q, o.Cached, wantCached)
		}
	}
	if n := inner.calls.Load(); n != 2 {
		t.Fatalf("backend called %d times, want 2", n)
	}
	r := &Replay{Store: s, Backends: []string{"serpapi"}}
	if o, err := r.Call(ctx, "search", "london"); err != nil || o.Text != "obs:London" || !o.Cached {
		t.Fatalf("replay hit = %+v, %v", o, err)
	}
	if o, err := r.Call(ctx, "search", "Berlin"); err != nil || o.Text != ReplayMiss {
		t.Fatalf("replay miss = %+v, %v", o, err)
	}
}

func TestLocalSearchSnippet(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fillCorpus(t, s, "wiki", 3)
	l := &LocalSearch{Store: s, Corpus: "wiki"}
	o, err := l.Call(ctx, "search", "number 2 museum")
	if err != nil || o.Text != "The number 2 museum is in city2. It opened long ago." {
		t.Fatalf("search = %+v, %v", o, err)
	}
	if o, _ := l.Call(ctx, "search", "zzzz"); o.Text != NoResult {
		t.Fatalf("no-hit search = %q", o.Text)
	}
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"Short one.", 100, "Short one."},
		{"First sentence. Second sentence is long.", 30, "First sentence."},
		{"Nosentenceboundary here at all", 20, "Nosentenceboundary..."},
		{"Para one.\n\nPara two.", 100, "Para one."},
	}
	for _, tc := range tests {
		if got := Snippet(tc.in, tc.n); got != tc.want {
			t.Errorf("Snippet(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestLocalSearchPrefersExactTitle: search[entity] returns the entity's page even
// when another page mentions the entity more often.
func TestLocalSearchPrefersExactTitle(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.AddCorpusDocs(ctx, []store.CorpusDoc{
		{Corpus: "w", Title: "The Long Road", Text: "The Long Road was directed by Ann Lee. Ann Lee also wrote The Long Road with Ann Lee's sister."},
		{Corpus: "w", Title: "Ann Lee", Text: "Ann Lee (born 1950) is a director."},
	}); err != nil {
		t.Fatal(err)
	}
	l := &LocalSearch{Store: s, Corpus: "w"}
	if o, err := l.Call(ctx, "search", "ann lee"); err != nil || o.Text != "Ann Lee (born 1950) is a director." {
		t.Fatalf("search[ann lee] = %q, %v", o.Text, err)
	}
}

// TestSerpAPI runs the SerpAPI tool against a local server answering with the
// JSON shapes FireAct's priority order reads, and checks that the key never
// appears in errors.
func TestSerpAPI(t *testing.T) {
	const key = "secret-serp-key"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api_key") != key || r.URL.Query().Get("engine") != "google" {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"Invalid API key ` + r.URL.Query().Get("api_key") + `"}`))
			return
		}
		var body any
		switch r.URL.Query().Get("q") {
		case "answer":
			body = map[string]any{"answer_box": map[string]any{"answer": "42", "snippet": "no"}}
		case "snippet":
			body = map[string]any{"answer_box": map[string]any{"snippet": "box snippet"}, "organic_results": []any{map[string]any{"snippet": "no"}}}
		case "words":
			body = map[string]any{"answer_box": map[string]any{"snippet_highlighted_words": []string{"highlight"}}}
		case "organic":
			body = map[string]any{"organic_results": []any{map[string]any{"snippet": "first organic"}, map[string]any{"snippet": "second"}}}
		default:
			body = map[string]any{}
		}
		json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()
	s := &SerpAPI{Key: key, BaseURL: srv.URL, Client: srv.Client()}
	for q, want := range map[string]string{"answer": "42", "snippet": "box snippet", "words": "highlight", "organic": "first organic", "nothing": "None"} {
		o, err := s.Call(context.Background(), "search", q)
		if err != nil || o.Text != want {
			t.Errorf("search %q = %q, %v; want %q", q, o.Text, err, want)
		}
	}
	bad := &SerpAPI{Key: "wrong-key-123", BaseURL: srv.URL, Client: srv.Client()}
	if _, err := bad.Call(context.Background(), "search", "x"); err == nil || strings.Contains(err.Error(), "wrong-key-123") {
		t.Fatalf("bad key error = %v (must fail without echoing the key)", err)
	}
	down := &SerpAPI{Key: key, BaseURL: "http://127.0.0.1:1/search.json",
		Client: &http.Client{Transport: &Retry{MaxAttempts: 2, Base: time.Millisecond}}}
	if _, err := down.Call(context.Background(), "search", "x"); err == nil || strings.Contains(err.Error(), key) {
		t.Fatalf("connection error = %v (must fail without the key)", err)
	}
}

// serpBody is a SerpAPI Google response of the real shape (metadata, answer
// box, organic results) with the given answer_box and organic_results JSON.
func serpBody(answerBox, organic string) string {
	b := `{"search_metadata":{"id":"6568a1b2c3","status":"Success","json_endpoint":"https://serpapi.com/searches/x.json","created_at":"2023-11-30 14:00:00 UTC","processed_at":"2023-11-30 14:00:00 UTC","total_time_taken":1.23},` +
		`"search_parameters":{"engine":"google","q":"q","google_domain":"google.com","hl":"en","gl":"us","device":"desktop"},` +
		`"search_information":{"organic_results_state":"Results for exact spelling","query_displayed":"q","total_results":1230000,"time_taken_displayed":0.41}`
	if answerBox != "" {
		b += `,"answer_box":` + answerBox
	}
	if organic != "" {
		b += `,"organic_results":` + organic
	}
	return b + "}"
}

// TestSerpAPIRetriesAndOddFields: NewSerpAPI's client retries a 429, a 503 and
// a reply slower than the attempt timeout, so the episode gets its answer; a
// field of an unexpected type is skipped and the next source in FireAct's
// order answers.
func TestSerpAPIRetriesAndOddFields(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		mu.Lock()
		calls[q]++
		n := calls[q]
		mu.Unlock()
		switch {
		case q == "flaky" && n == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			w.Write([]byte(`{"error":"Your account has run out of searches."}`))
			return
		case q == "flaky" && n == 2:
			w.WriteHeader(503)
			w.Write([]byte(`<html><body>503 Service Unavailable</body></html>`))
			return
		case q == "slow" && n == 1:
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		var body string
		switch q {
		case "flaky", "slow":
			body = serpBody(`{"type":"organic_result","title":"Paris","answer":"Paris","snippet":"no"}`, "")
		case "box list":
			body = serpBody(`[{"type":"organic_result","snippet":"first box"},{"snippet":"second box"}]`, "")
		case "number answer":
			body = serpBody(`{"type":"calculator_result","answer":42,"snippet":"forty-two"}`, "")
		case "odd words":
			body = serpBody(`{"snippet_highlighted_words":[7,"x"],"snippet":null}`,
				`[{"position":1,"title":"T","link":"https://example.com","snippet":"organic one","snippet_highlighted_words":["one"]}]`)
		case "odd organic":
			body = serpBody(`"not a box"`, `{"snippet":"an object, not a list"}`)
		case "odd error":
			body = `{"error":{"code":1},"organic_results":[{"snippet":"still here"}]}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	defer srv.Close()
	plain := &SerpAPI{Key: "serp-key", BaseURL: srv.URL, Client: srv.Client()}
	for q, want := range map[string]string{"box list": "first box", "number answer": "forty-two",
		"odd words": "organic one", "odd organic": "an object, not a list", "odd error": "still here"} {
		o, err := plain.Call(context.Background(), "search", q)
		if err != nil || o.Text != want {
			t.Errorf("search %q = %q, %v; want %q", q, o.Text, err, want)
		}
	}
	t.Setenv(SerpAPIKeyEnv, "serp-key")
	s, err := NewSerpAPI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rt, ok := s.Client.Transport.(*Retry)
	if !ok {
		t.Fatalf("NewSerpAPI's client transport is %T, want *Retry", s.Client.Transport)
	}
	rt.Base, rt.MaxDelay, rt.AttemptTimeout = time.Millisecond, 10*time.Millisecond, 300*time.Millisecond
	for _, q := range []string{"flaky", "slow"} {
		o, err := s.Call(context.Background(), "search", q)
		if err != nil || o.Text != "Paris" {
			t.Errorf("search %q = %q, %v; want Paris", q, o.Text, err)
		}
	}
	if n := rt.Retries.Load(); n != 3 {
		t.Errorf("retries = %d, want 3 (429, 503, timeout)", n)
	}
}

// TestNewSearchLocalCorpus: local search over a corpus that is missing or
// empty fails when the tool is built, naming the corpus and how to index it;
// answers cached from one version of a corpus do not answer for the next
// (a "No results found." cached before re-indexing is not served after).
func TestNewSearchLocalCorpus(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki"})
	if err == nil || !strings.Contains(err.Error(), `"wiki"`) || !strings.Contains(err.Error(), "fireact index") {
		t.Fatalf("missing corpus: err = %v, want one naming the corpus and fireact index", err)
	}
	fillCorpus(t, s, "wiki", 2)
	tool, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := tool.Call(ctx, "search", "number 7 museum city7"); err != nil || o.Text == "" {
		t.Fatalf("search = %+v, %v", o, err)
	}
	if o, err := tool.Call(ctx, "search", "zeppelin"); err != nil || o.Text != NoResult {
		t.Fatalf("search zeppelin = %+v, %v", o, err)
	}
	if err := s.AddCorpusDocs(ctx, []store.CorpusDoc{{Corpus: "wiki", Title: "Zeppelin", Text: "A zeppelin is a rigid airship."}}); err != nil {
		t.Fatal(err)
	}
	tool, err = NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := tool.Call(ctx, "search", "zeppelin"); err != nil || o.Cached || o.Text != "A zeppelin is a rigid airship." {
		t.Fatalf("after re-indexing, search zeppelin = %+v, %v; want the new page, not the cached miss", o, err)
	}
	// Replay reads the current version's namespace.
	r, err := NewSearch(ctx, s, SearchOptions{Backend: SearchReplay, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := r.Call(ctx, "search", "Zeppelin"); err != nil || o.Text != "A zeppelin is a rigid airship." {
		t.Fatalf("replay = %+v, %v", o, err)
	}
}

// TestNoiseKinds checks FireAct's two noise settings apart: "none" replaces an
// observation by "None" only, "random" by another query's recorded
// observation only, drawn from the tool cache and never by a new search; and
// random noise without recorded observations is refused up front.
func TestNoiseKinds(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fillCorpus(t, s, "wiki", 4)
	if _, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki", Noise: 0.5, NoiseKind: NoiseRandom}); err == nil {
		t.Fatal("random noise over an empty tool cache: want an error up front")
	}
	v, err := s.CorpusVersion(ctx, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := s.CachePut(ctx, LocalCacheBackend(v), fmt.Sprintf("museum %d", i), fmt.Sprintf("recorded %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki", Noise: 0.5, NoiseKind: "swap"}); err == nil {
		t.Fatal("unknown noise kind: want an error")
	}
	tool, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki", Noise: 0.5, NoiseKind: NoiseRandom})
	if err != nil {
		t.Fatal(err)
	}
	pool := tool.(*Noise).Pool
	for _, kind := range []string{NoiseNone, NoiseRandom} {
		inner := &countingTool{}
		n := &Noise{Inner: inner, P: 0.5, Seed: 7, Kind: kind, Pool: pool}
		clean, noisy := 0, 0
		for i := 0; i < 200; i++ {
			q := fmt.Sprintf("museum %d", i%4)
			o, err := n.Call(WithCallSite(ctx, CallSite{Episode: fmt.Sprint(i)}), "search", q)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case o.Noise == "":
				clean++
			case kind == NoiseNone && o.Noise == NoiseNone && o.Text == NoneObservation:
				noisy++
			case kind == NoiseRandom && strings.HasPrefix(o.Noise, "random:") && strings.HasPrefix(o.Text, "recorded ") &&
				o.Noise != "random:"+q:
				noisy++
			default:
				t.Fatalf("%s noise gave %+v for %q", kind, o, q)
			}
		}
		if noisy < 70 || clean < 70 {
			t.Fatalf("%s: %d noisy, %d clean of 200 at p=0.5", kind, noisy, clean)
		}
		if int(inner.calls.Load()) != clean {
			t.Fatalf("%s: the search was called %d times for %d clean observations: noise must not search", kind, inner.calls.Load(), clean)
		}
	}
}
