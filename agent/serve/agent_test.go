package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// storeRunner is an AgentRunner for tests: one real generation step with the
// backend, recorded as an episode in a real store, as the agent package's
// runner will do with the whole loop.
type storeRunner struct {
	st     *store.Store
	runID  int64
	next   atomic.Int64 // question index
	active atomic.Int64 // runs in progress
	maxGen int
	// started is signalled by every run as it begins.
	started chan struct{}
}

func newStoreRunner(t testing.TB, maxGen int) *storeRunner {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	run := store.Run{Name: "serve-test", Kind: store.KindEval, Method: "react", Task: "demo", Split: "test", Config: "{}"}
	if _, err := st.CreateRun(ctx, &run); err != nil {
		t.Fatal(err)
	}
	return &storeRunner{st: st, runID: run.ID, maxGen: maxGen, started: make(chan struct{}, 1024)}
}

func (r *storeRunner) run(ctx context.Context, b Backend, req AgentRequest) (AgentResponse, error) {
	r.active.Add(1)
	defer r.active.Add(-1)
	r.started <- struct{}{}
	if req.Method != "" && req.Method != "react" {
		return AgentResponse{}, fmt.Errorf("method %q: %w", req.Method, ErrInvalidAgentRequest)
	}
	prompt := "Question: " + req.Question + "\nThought 1:"
	res, err := b.Generate(ctx, llama.Request{Prompt: prompt, MaxTokens: r.maxGen, Stop: []string{"\n"}})
	if err != nil {
		return AgentResponse{}, err
	}
	// UpsertQuestions fills in the ID of each element of the slice.
	qs := []store.Question{{Task: "demo", Split: "test", Index: int(r.next.Add(1)), Text: req.Question, Gold: req.Gold}}
	if err := r.st.UpsertQuestions(ctx, qs); err != nil {
		return AgentResponse{}, err
	}
	answer := strings.TrimSpace(res.Text)
	steps := []store.Step{{Thought: answer, Action: "finish", Argument: answer, GeneratedTokens: len(res.Tokens)}}
	ep := store.Episode{RunID: r.runID, QuestionID: qs[0].ID, Status: store.EpisodeDone, Method: "react",
		Prediction: answer, Turns: 1, PromptTokens: res.PromptTokens, GeneratedTokens: len(res.Tokens)}
	// The episode is recorded even if the client has gone: the work is done.
	if err := r.st.InsertEpisode(context.WithoutCancel(ctx), &ep, steps); err != nil {
		return AgentResponse{}, err
	}
	return AgentResponse{RunID: r.runID, EpisodeID: ep.ID, Answer: answer, Finished: true,
		Steps: []AgentStep{{Thought: answer, Action: "finish", Argument: answer}},
		Usage: Usage{PromptTokens: res.PromptTokens, CompletionTokens: len(res.Tokens), TotalTokens: res.PromptTokens + len(res.Tokens)}}, nil
}

// postAgent sends one /v1/agent/run request.
func postAgent(ctx context.Context, url string, req AgentRequest) (int, AgentResponse, error) {
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/agent/run", bytes.NewReader(body))
	if err != nil {
		return 0, AgentResponse{}, err
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0, AgentResponse{}, err
	}
	defer resp.Body.Close()
	var out AgentResponse
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return resp.StatusCode, out, fmt.Errorf("decoding a 200 response: %w", err)
		}
	}
	return resp.StatusCode, out, nil
}

func TestAgentRun(t *testing.T) {
	runner := newStoreRunner(t, 8)
	f := newFixture(t, func(c *Config) { c.AgentRunner = runner.run })
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		req    AgentRequest
		status int
	}{
		{"react with adapter", AgentRequest{Model: "tiny+a", Question: "Who wrote the book?", Method: "react", Tools: []string{"local"}, Noise: 0.5}, 200},
		{"default model", AgentRequest{Question: "Which river is longer?"}, 200},
		{"unknown method", AgentRequest{Model: "tiny", Question: "q", Method: "telepathy"}, 400},
		{"no question", AgentRequest{Model: "tiny"}, 400},
		{"bad noise", AgentRequest{Model: "tiny", Question: "q", Noise: 2}, 400},
		{"unknown model", AgentRequest{Model: "tiny+zzz", Question: "q"}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, resp, err := postAgent(ctx, f.url, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if status != 200 {
				return
			}
			ep, err := runner.st.Episode(ctx, resp.EpisodeID)
			if err != nil {
				t.Fatalf("episode %d of the response: %v", resp.EpisodeID, err)
			}
			if ep.Prediction != resp.Answer || resp.Object != "agent.run" || len(resp.Steps) != 1 || resp.Usage.CompletionTokens == 0 {
				t.Fatalf("response %+v, stored episode %+v", resp, ep)
			}
			if want := tc.req.Model; want != "" && resp.Model != want {
				t.Fatalf("model %q, want %q", resp.Model, want)
			}
		})
	}
	t.Run("no runner", func(t *testing.T) {
		g := newFixture(t, nil)
		if status, _, err := postAgent(ctx, g.url, AgentRequest{Question: "q"}); err != nil || status != http.StatusNotImplemented {
			t.Fatalf("status %d err %v, want 501", status, err)
		}
	})
}

// TestShutdownDuringLoad starts many agent runs, shuts the server down while
// they are in flight, and checks that shutdown waited for every one of them:
// each request the server took is answered 200 and its episode is in the
// store; the rest were refused at the door, not dropped.
func TestShutdownDuringLoad(t *testing.T) {
	runner := newStoreRunner(t, 64)
	f := newFixture(t, func(c *Config) { c.AgentRunner = runner.run })
	ctx := context.Background()
	const clients = 24
	type result struct {
		status int
		resp   AgentResponse
		err    error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			// Stagger the arrivals so that some come after the shutdown began.
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			status, resp, err := postAgent(ctx, f.url, AgentRequest{Model: "tiny+b", Question: fmt.Sprintf("question %d", i)})
			results[i] = result{status, resp, err}
		})
	}
	// Shut down once a few runs are under way.
	for range 6 {
		<-runner.started
	}
	inFlight := runner.active.Load()
	if err := f.shutdown(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := runner.active.Load(); n != 0 {
		t.Fatalf("Serve returned with %d agent runs still going", n)
	}
	wg.Wait()

	var ok, refused int
	for i, r := range results {
		switch {
		case r.err == nil && r.status == 200:
			ok++
			ep, err := runner.st.Episode(ctx, r.resp.EpisodeID)
			if err != nil || ep.Prediction != r.resp.Answer {
				t.Errorf("client %d got 200 with episode %d, store: %+v %v", i, r.resp.EpisodeID, ep, err)
			}
		case r.err != nil && isConnRefused(r.err):
			refused++
		default:
			t.Errorf("client %d: status %d err %v", i, r.status, r.err)
		}
	}
	sum, err := runner.st.Summary(ctx, runner.runID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in flight at shutdown: %d; answered %d, refused %d; episodes stored %d", inFlight, ok, refused, sum.Episodes)
	if sum.Episodes != ok {
		t.Errorf("%d episodes stored, %d requests answered 200", sum.Episodes, ok)
	}
	if int64(ok) < inFlight || ok == 0 {
		t.Errorf("only %d answered, %d were in flight at shutdown", ok, inFlight)
	}
}

// isConnRefused reports whether a request failed because the listener was
// already closed (refused, or reset while still in the kernel's accept queue):
// the client knows it was not served. A request that was served but whose
// answer got lost would show up here too, which is why the test also compares
// the stored episodes with the 200 answers.
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}
