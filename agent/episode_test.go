package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fireact/fireact/store/trajectory"
)

// scriptedLLM is a test double of the LLM seam: it answers each Complete with
// the next reply of its script, as a model would, and keeps the requests.
type scriptedLLM struct {
	mu      sync.Mutex
	replies []string
	reqs    []Request
}

// errReply in a script makes that call fail.
const errReply = "\x00fail"

var errScripted = errors.New("scripted llm failure")

// Complete implements LLM.
func (s *scriptedLLM) Complete(_ context.Context, req Request) (Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	if len(s.replies) == 0 {
		return Response{}, fmt.Errorf("script exhausted at call %d", len(s.reqs))
	}
	r := s.replies[0]
	s.replies = s.replies[1:]
	if r == errReply {
		return Response{}, errScripted
	}
	return Response{Text: r, PromptTokens: 10, CachedTokens: 4, GeneratedTokens: 3}, nil
}

// TestEpisodeLoop drives Solve's turn loop through every way an episode goes
// on or ends, with a scripted LLM and a replay search over a real store
// whose cache holds one query.
func TestEpisodeLoop(t *testing.T) {
	const (
		searchParis = " I need to search Paris.\nAction: search[Paris]"
		searchMars  = " I need to search Mars.\nAction: search[Mars]"
		finishParis = " So the answer is Paris.\nAction: finish[Paris]"
		finishLyon  = " So the answer is Lyon.\nAction: finish[Lyon]"
		noise       = " la la la"
	)
	withTurns := func(m Method, n int) Method { m.MaxTurns = n; return m }
	tests := []struct {
		name     string
		method   Method
		oracle   bool
		gold     string
		noTool   bool
		script   []string
		status   trajectory.Status
		err      bool
		reward   float64
		actions  []string // step actions in order ("" for an invalid turn)
		obs      []string // observations; "*" matches any
		reflects []string // step reflections; nil means none
		cacheHit []bool
	}{
		{name: "search then right finish", method: ReAct(), gold: "Paris",
			script: []string{searchParis, finishParis}, status: trajectory.StatusDone, reward: 1,
			actions:  []string{"search", "finish"},
			obs:      []string{"Paris is the capital of France.", "Episode finished, reward = True"},
			cacheHit: []bool{true, false}},
		{name: "cache miss", method: ReAct(), gold: "Paris",
			script: []string{searchMars, finishLyon}, status: trajectory.StatusDone,
			actions: []string{"search", "finish"}, obs: []string{ReplayMiss, "Episode finished, reward = False"},
			cacheHit: []bool{false, false}},
		{name: "unknown gold has no reward", method: ReAct(),
			script: []string{finishLyon}, status: trajectory.StatusDone,
			actions: []string{"finish"}, obs: []string{"Episode finished"}},
		{name: "no search tool", method: ReAct(), gold: "Paris", noTool: true,
			script: []string{searchParis, finishParis}, status: trajectory.StatusDone, reward: 1,
			actions: []string{"search", "finish"},
			obs:     []string{"Invalid action: no search tool is available. Answer with finish[answer].", "*"}},
		{name: "turns run out", method: withTurns(ReAct(), 2), gold: "Paris",
			script: []string{searchMars, searchMars}, status: trajectory.StatusUnfinished,
			actions: []string{"search", "search"}, obs: []string{ReplayMiss, ReplayMiss}},
		{name: "unparseable turns end the episode", method: ReAct(), gold: "Paris",
			script:  []string{noise, noise, noise, noise, noise, noise},
			status:  trajectory.StatusUnfinished,
			actions: []string{"", "", ""}, obs: []string{"*", "*", "*"}},
		{name: "a valid turn resets the invalid count", method: ReAct(), gold: "Paris",
			script: []string{noise, noise, noise, noise, searchParis, noise, noise, finishParis},
			status: trajectory.StatusDone, reward: 1,
			actions: []string{"", "", "search", "", "finish"}, obs: []string{"*", "*", "*", "*", "*"}},
		{name: "re-ask recovers the action", method: ReAct(), gold: "Paris",
			script: []string{" I need to search Paris.", "search[Paris]", finishParis},
			status: trajectory.StatusDone, reward: 1,
			actions: []string{"search", "finish"}, obs: []string{"Paris is the capital of France.", "*"}},
		{name: "cot may not search", method: CoT(), gold: "Paris",
			script: []string{searchParis}, status: trajectory.StatusUnfinished,
			actions: []string{""},
			obs:     []string{"Invalid action (turn: malformed action in model output: cot takes no search). Answer with finish[answer]."}},
		{name: "io answers only", method: IO(), gold: "Paris",
			script: []string{" Paris"}, status: trajectory.StatusDone, reward: 1,
			actions: []string{"finish"}, obs: []string{"Episode finished, reward = True"}},
		{name: "wrong finish without oracle ends", method: Reflexion(), gold: "Paris",
			script: []string{finishLyon}, status: trajectory.StatusDone,
			actions: []string{"finish"}, obs: []string{"Episode finished, reward = False"}},
		{name: "oracle retries a wrong finish", method: Reflexion(), oracle: true, gold: "Paris",
			script: []string{finishLyon, finishParis}, status: trajectory.StatusDone, reward: 1,
			actions:  []string{"finish", "finish"},
			obs:      []string{incorrectObservation, "Episode finished, reward = True"},
			reflects: []string{"", wrongAnswerText()}},
		{name: "oracle retries only once", method: Reflexion(), oracle: true, gold: "Paris",
			script: []string{finishLyon, finishLyon}, status: trajectory.StatusDone,
			actions:  []string{"finish", "finish"},
			obs:      []string{incorrectObservation, "Episode finished, reward = False"},
			reflects: []string{"", wrongAnswerText()}},
		{name: "no retry on the last turn", method: withTurns(Reflexion(), 1), oracle: true, gold: "Paris",
			script: []string{finishLyon}, status: trajectory.StatusDone,
			actions: []string{"finish"}, obs: []string{"Episode finished, reward = False"}},
		{name: "reflection after five steps, warning before the last turn", method: withTurns(Reflexion(), 7), gold: "Paris",
			script: []string{searchMars, searchMars, searchMars, searchMars, searchMars, searchMars, finishParis},
			status: trajectory.StatusDone, reward: 1,
			actions:  []string{"search", "search", "search", "search", "search", "search", "finish"},
			obs:      []string{"*", "*", "*", "*", "*", "*", "*"},
			reflects: []string{"", "", "", "", "", reflectionText(5), warnText(6)}},
		{name: "llm failure is an error episode", method: ReAct(), gold: "Paris",
			script: []string{searchParis, errReply}, status: trajectory.StatusError, err: true,
			actions: []string{"search"}, obs: []string{"*"}},
	}
	s := newStore(t)
	ctx := context.Background()
	if err := s.CachePut(ctx, "serpapi", "Paris", "Paris is the capital of France."); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			llm := &scriptedLLM{replies: tc.script}
			a := &Agent{LLM: llm, Method: tc.method, Prompt: Prompt{Format: FormatAlpaca}, OracleRetry: tc.oracle}
			if !tc.noTool {
				a.Search = &Replay{Store: s, Backends: []string{"serpapi"}}
			}
			res, err := a.Solve(ctx, Query{Text: "What is the capital of France?", Gold: tc.gold})
			if tc.err != (err != nil) || tc.err && !errors.Is(err, errScripted) {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if res.Status != tc.status || res.Trajectory.Reward != tc.reward {
				t.Fatalf("status %q reward %g, want %q %g", res.Status, res.Trajectory.Reward, tc.status, tc.reward)
			}
			if len(llm.replies) != 0 {
				t.Fatalf("%d scripted replies left unread", len(llm.replies))
			}
			steps := res.Trajectory.Steps
			if len(steps) != len(tc.actions) || len(res.Info) != len(steps) {
				t.Fatalf("%d steps (%d infos), want %d: %+v", len(steps), len(res.Info), len(tc.actions), steps)
			}
			for i, st := range steps {
				if st.Action != tc.actions[i] {
					t.Errorf("step %d action %q, want %q", i, st.Action, tc.actions[i])
				}
				if tc.obs[i] != "*" && st.Observation != tc.obs[i] {
					t.Errorf("step %d observation %q, want %q", i, st.Observation, tc.obs[i])
				}
				if st.Observation == "" {
					t.Errorf("step %d has no observation", i)
				}
				want := ""
				if tc.reflects != nil {
					want = tc.reflects[i]
				}
				if st.Reflection != want {
					t.Errorf("step %d reflection %q, want %q", i, st.Reflection, want)
				}
				if res.Info[i].Invalid != (st.Action == "") {
					t.Errorf("step %d invalid %v with action %q", i, res.Info[i].Invalid, st.Action)
				}
				if tc.cacheHit != nil && res.Info[i].ToolCacheHit != tc.cacheHit[i] {
					t.Errorf("step %d tool cache hit %v, want %v", i, res.Info[i].ToolCacheHit, tc.cacheHit[i])
				}
				if ct := res.Info[i].CachedTokens; ct == 0 || ct%4 != 0 {
					t.Errorf("step %d KV-cached tokens %d, want 4 per call", i, ct)
				}
			}
			answered := len(llm.reqs)
			if tc.err {
				answered-- // the failed call has no usage
			}
			if res.Usage.Calls != answered {
				t.Fatalf("usage counts %d calls, the LLM answered %d", res.Usage.Calls, answered)
			}
			if tc.status == trajectory.StatusDone && !strings.EqualFold(steps[len(steps)-1].Action, "finish") {
				t.Fatalf("done episode ends with %+v", steps[len(steps)-1])
			}
		})
	}
}
