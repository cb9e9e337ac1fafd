package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fireact/fireact/store"
)

// teacherServer is an OpenAI-compatible server that plays a scripted ReAct
// teacher over testTask's questions: it searches the question, then finishes
// with the gold answer. Per question it can fail the first call with a 429
// (with Retry-After), a 500 or a reply slower than the client's attempt
// timeout, or fail every call.
type teacherServer struct {
	mu    sync.Mutex
	calls map[int]int
	// first maps a question number to the failure of its first call
	// ("429", "500", "slow"); always to a failure of every call.
	first  map[int]string
	always map[int]bool
}

var museumRe = regexp.MustCompile(`home of the number (\d+) museum`)

func (s *teacherServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Prompt   string `json:"prompt"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
		Stop []string `json:"stop"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	text := req.Prompt
	for _, m := range req.Messages {
		text += m.Content + "\n"
	}
	ms := museumRe.FindAllStringSubmatchIndex(text, -1)
	if len(ms) == 0 {
		http.Error(w, `{"error":{"message":"no question"}}`, 400)
		return
	}
	last := ms[len(ms)-1]
	q, _ := strconv.Atoi(text[last[2]:last[3]])
	s.mu.Lock()
	s.calls[q]++
	n := s.calls[q]
	s.mu.Unlock()
	switch {
	case s.always[q]:
		w.WriteHeader(500)
		w.Write([]byte(`{"error":{"message":"permanent failure","type":"server_error"}}`))
		return
	case n == 1 && s.first[q] == "429":
		w.Header().Set("Retry-After", "0.05")
		w.WriteHeader(429)
		w.Write([]byte(`{"error":{"message":"rate limited","type":"rate_limit"}}`))
		return
	case n == 1 && s.first[q] == "500":
		w.WriteHeader(500)
		w.Write([]byte(`{"error":{"message":"oops","type":"server_error"}}`))
		return
	case n == 1 && s.first[q] == "slow":
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	// The question's own part of the prompt: after its last mention.
	searched := strings.Contains(text[last[1]:], "Observation:")
	reply := fmt.Sprintf(" I need to find the number %d museum.\nAction: search[number %d museum]\nObservation: (the teacher must not write this)", q, q)
	if searched {
		reply = fmt.Sprintf(" The museum is in city%d.\nAction: finish[city%d]", q, q)
	}
	usage := map[string]int{"prompt_tokens": len(text) / 4, "completion_tokens": len(reply) / 4, "total_tokens": (len(text) + len(reply)) / 4}
	var body map[string]any
	if r.URL.Path == "/v1/completions" {
		body = map[string]any{"id": "c", "object": "text_completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "text": reply, "finish_reason": "stop"}}, "usage": usage}
	} else {
		body = map[string]any{"id": "c", "object": "chat.completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": reply}, "finish_reason": "stop"}}, "usage": usage}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// TestOpenAITeacher runs the loop against the scripted teacher over HTTP on
// 127.0.0.1 with injected 429, 500 and slow replies: retries must make those
// episodes succeed, and a question whose calls always fail must be recorded
// as an error episode without losing the others; a resume retries it.
func TestOpenAITeacher(t *testing.T) {
	for _, mode := range []struct {
		name        string
		completions bool
		format      Format
	}{{"chat", false, FormatFewShot}, {"completions", true, FormatFewShot}, {"chat messages", false, FormatChat}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			ts := &teacherServer{calls: map[int]int{}, first: map[int]string{0: "429", 1: "500", 2: "slow"}, always: map[int]bool{3: true}}
			srv := httptest.NewServer(ts)
			defer srv.Close()
			model := "gpt-4o-mini"
			if mode.completions {
				model = "gpt-3.5-turbo-instruct" // go-openai refuses chat models on /completions
			}
			llm, err := NewOpenAI(OpenAIOptions{Model: model, BaseURL: srv.URL + "/v1", Key: "test-key",
				Completions: mode.completions, Concurrency: 3,
				Retry: &Retry{MaxAttempts: 3, Base: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, AttemptTimeout: 500 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			s := newStore(t)
			fillCorpus(t, s, "wiki", 5)
			task := testTask(5)
			a := &Agent{LLM: llm, Search: &Cache{Inner: &LocalSearch{Store: s, Corpus: "wiki"}, Store: s, Backend: "local:wiki"},
				Method: ReAct(), Prompt: Prompt{Format: mode.format, FewShot: FewShotPrompt("hotpotqa", ReAct())}}
			spec := RunSpec{Store: s, Task: task, Agent: a, Indices: []int{0, 1, 2, 3, 4}, Concurrency: 5,
				Run: store.Run{Name: "teacher", Kind: store.KindGenerate, Task: task.Name(), Split: task.Split(), Method: "react"}}
			rep, err := RunTask(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			// The error episode counts as 0 over the 5 questions asked: EM 4/5.
			if rep.Run.Asked != 5 || rep.Summary.Asked != 5 || rep.Summary.EM != 0.8 {
				t.Fatalf("asked %d (summary %d), EM %v; want EM 0.8 over 5 asked", rep.Run.Asked, rep.Summary.Asked, rep.Summary.EM)
			}
			if rep.Ran != 5 || rep.Errors != 1 || rep.Run.Status != store.StatusFailed {
				eps, _ := s.Episodes(ctx, rep.Run.ID)
				t.Fatalf("report ran %d errors %d status %s; first error %q", rep.Ran, rep.Errors, rep.Run.Status, eps[0].Error)
			}
			if llm.Retries() < 3+2 { // 429, 500, slow, and 2 retries of the permanent failure
				t.Fatalf("retries %d, want at least 5", llm.Retries())
			}
			eps, err := s.Episodes(ctx, rep.Run.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, ep := range eps {
				q, _ := s.Question(ctx, ep.QuestionID)
				if q.Index == 3 {
					if ep.Status != store.EpisodeError || !strings.Contains(ep.Error, "permanent failure") {
						t.Fatalf("question 3: status %s error %q", ep.Status, ep.Error)
					}
					continue
				}
				steps, _ := s.Steps(ctx, ep.ID)
				if ep.Status != store.EpisodeDone || ep.EM != 1 || len(steps) != 2 || ep.Cost <= 0 || ep.PromptTokens == 0 {
					t.Fatalf("question %d: %+v with %d steps", q.Index, ep, len(steps))
				}
				if steps[0].Observation != fmt.Sprintf("The number %d museum is in city%d. It opened long ago.", q.Index, q.Index) {
					t.Fatalf("question %d: observation %q", q.Index, steps[0].Observation)
				}
				if strings.Contains(steps[0].Raw, "Observation") {
					t.Fatalf("stop string not applied: %q", steps[0].Raw)
				}
			}
			// Resume: the server recovers; only the error episode is redone.
			ts.mu.Lock()
			ts.always = nil
			ts.mu.Unlock()
			rep, err = RunTask(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Resumed || rep.Ran != 1 || rep.Skipped != 4 || rep.Run.Status != store.StatusDone || rep.Summary.Episodes != 5 || rep.Summary.EM != 1 {
				t.Fatalf("resume report %+v", rep)
			}
		})
	}
}

func TestRetryAfterAndPrice(t *testing.T) {
	if d := retryAfter("2"); d != 2*time.Second {
		t.Fatalf("retryAfter(2) = %v", d)
	}
	if d := retryAfter(time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)); d < time.Second || d > 3*time.Second {
		t.Fatalf("retryAfter(date) = %v", d)
	}
	tests := []struct {
		model string
		want  Price
		ok    bool
	}{{"gpt-4o-mini-2024-07-18", Price{0.15, 0.60}, true}, {"gpt-4-0613", Price{30, 60}, true}, {"llama-3-8b", Price{}, false}}
	for _, tc := range tests {
		if p, ok := PriceOf(tc.model); p != tc.want || ok != tc.ok {
			t.Errorf("PriceOf(%q) = %v %v", tc.model, p, ok)
		}
	}
	if p, err := ParsePrice("1.5, 2"); err != nil || p != (Price{1.5, 2}) {
		t.Fatalf("ParsePrice = %v %v", p, err)
	}
	if _, err := ParsePrice("x"); err == nil {
		t.Fatal("ParsePrice(x) succeeded")
	}
}

// TestOpenAISendsExplicitSampling reads the wire body of chat and completion
// requests on a 127.0.0.1 server: temperature 0 (greedy, FireAct's setting)
// must be in it, since a server that sees no temperature samples at 1.0; top_p
// 0 ("off") goes out as 1, and other values as written.
func TestOpenAISendsExplicitSampling(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]json.RawMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		usage := `"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}`
		if r.URL.Path == "/v1/completions" {
			fmt.Fprintf(w, `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" Paris","index":0,"logprobs":null,"finish_reason":"stop"}],%s}`, usage)
			return
		}
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"logprobs":null,"finish_reason":"stop"}],%s}`, usage)
	}))
	defer srv.Close()
	tests := []struct {
		name        string
		completions bool
		temp, topP  float64
		wantT       string
		wantP       string
	}{
		{"chat greedy", false, 0, 0, "0", "1"},
		{"completions greedy", true, 0, 1, "0", "1"},
		{"chat sampled", false, 0.7, 0.9, "0.7", "0.9"},
		{"completions sampled", true, 0.7, 0.95, "0.7", "0.95"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			llm, err := NewOpenAI(OpenAIOptions{Model: "gpt-3.5-turbo-instruct", BaseURL: srv.URL + "/v1", Key: "k", Completions: tc.completions})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			bodies = nil
			mu.Unlock()
			r, err := llm.Complete(context.Background(), Request{Prompt: "Capital of France?", MaxTokens: 8, Temperature: tc.temp, TopP: tc.topP})
			if err != nil || !strings.Contains(r.Text, "Paris") {
				t.Fatalf("Complete = %+v, %v", r, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != 1 {
				t.Fatalf("%d requests", len(bodies))
			}
			b := bodies[0]
			if got, ok := b["temperature"]; !ok || string(got) != tc.wantT {
				t.Errorf("temperature on the wire = %s (present %v), want %s", got, ok, tc.wantT)
			}
			if got, ok := b["top_p"]; !ok || string(got) != tc.wantP {
				t.Errorf("top_p on the wire = %s (present %v), want %s", got, ok, tc.wantP)
			}
			if _, ok := b["prompt"]; ok != tc.completions {
				t.Errorf("prompt field present %v on the %s endpoint", ok, tc.name)
			}
		})
	}
}

// TestRetryCapsResponseBody: a body over MaxResponseBytes fails with
// ErrResponseTooLarge after one request, instead of being read into memory
// whole and retried.
func TestRetryCapsResponseBody(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Write([]byte(`{"choices":[{"text":"` + strings.Repeat("a", 4096) + `"}]}`))
	}))
	defer srv.Close()
	c := &http.Client{Transport: &Retry{MaxAttempts: 3, Base: time.Millisecond, MaxResponseBytes: 1024}}
	resp, err := c.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrResponseTooLarge) || calls.Load() != 1 {
		t.Fatalf("get = %v after %d calls; want ErrResponseTooLarge after 1", err, calls.Load())
	}
	small := &http.Client{Transport: &Retry{MaxResponseBytes: 8192}}
	resp, err = small.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
