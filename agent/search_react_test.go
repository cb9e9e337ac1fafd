package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fireact/fireact/agent/metrics"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/agent/turn"
	"github.com/fireact/fireact/agent/wikienv"
	"github.com/fireact/fireact/store"
)

// wikiStore is a store whose corpus "wiki" is the HotpotQA-dump fixture,
// indexed the way `fireact index` does.
func wikiStore(t *testing.T) *store.Store {
	t.Helper()
	s := newStore(t)
	if _, err := Index(context.Background(), s, []string{dumpDir}, IndexOptions{Corpus: "wiki"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// The fixture's pages as the dump's sentences join them.
const (
	salzburgPage = "Salzburg is the fourth-largest city in Austria. It is the capital of the state of Salzburg. Its old town is known for its Baroque architecture. " +
		"It lies north of the Alps. It was ruled by prince-archbishops. The old town lies on the left bank of the Salzach river. The Salzach river flows into the Inn."
	mozartObs   = "Wolfgang Amadeus Mozart was a composer of the Classical period. He was born in Salzburg. He wrote more than 800 works.."
	salzburgObs = "Salzburg is the fourth-largest city in Austria. It is the capital of the state of Salzburg. Its old town is known for its Baroque architecture. " +
		"It lies north of the Alps. It was ruled by prince-archbishops."
	river1 = "(Result 1 / 2) The old town lies on the left bank of the Salzach river."
	river2 = "(Result 2 / 2) The Salzach river flows into the Inn.."
)

func TestLocalSearchReActStyle(t *testing.T) {
	ctx := context.Background()
	s := wikiStore(t)
	l := &LocalSearch{Store: s, Corpus: "wiki", Style: SearchStyleReAct}
	if o, err := l.Call(ctx, "search", "salzburg"); err != nil || o.Text != salzburgObs {
		t.Fatalf("search[salzburg] = %q, %v\nwant %q", o.Text, err, salzburgObs)
	}
	if o, _ := l.Call(ctx, "search", "Wolfgang Amadeus Mozart"); o.Text != mozartObs {
		t.Fatalf("search[Mozart] = %q", o.Text)
	}
	// No page titled so: the titles of the top five BM25 hits, as a Python list.
	docs, err := s.SearchCorpus(ctx, "wiki", "Mozart Salzburg birthplace", 5)
	if err != nil || len(docs) < 2 {
		t.Fatalf("BM25 hits = %v, %v", docs, err)
	}
	var titles []string
	for _, d := range docs {
		titles = append(titles, "'"+d.Title+"'")
	}
	want := "Could not find Mozart Salzburg birthplace. Similar: [" + strings.Join(titles, ", ") + "]."
	if o, _ := l.Call(ctx, "search", "Mozart Salzburg birthplace"); o.Text != want {
		t.Fatalf("not-found search = %q\nwant %q", o.Text, want)
	}
	if o, _ := l.Call(ctx, "search", "qwertyuiop"); o.Text != "Could not find qwertyuiop. Similar: []." {
		t.Fatalf("no-hit search = %q", o.Text)
	}

	// lookup follows the history in the context, so one tool serves many
	// episodes at once, each at its own position.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			hist := []ToolCall{{turn.ActionSearch, "Salzburg"}}
			wants := []string{river1, river2, wikienv.NoMoreResults}
			if g%2 == 1 { // these episodes look up something else first
				hist = append(hist, ToolCall{turn.ActionLookup, "Alps"})
			}
			for i := 0; i < 3; i++ {
				o, err := l.Call(WithToolHistory(ctx, hist), "lookup", "river")
				if err != nil || o.Text != wants[i] {
					errs <- fmt.Errorf("episode %d lookup %d = %q, %v; want %q", g, i, o.Text, err, wants[i])
					return
				}
				hist = append(hist, ToolCall{turn.ActionLookup, "river"})
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if o, _ := l.Call(ctx, "lookup", "river"); o.Text != wikienv.NoMoreResults {
		t.Fatalf("lookup before any search = %q", o.Text)
	}
	if _, err := (&LocalSearch{Store: s, Corpus: "wiki"}).Call(ctx, "lookup", "river"); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("lookup in the FireAct style: %v, want ErrUnknownAction", err)
	}
}

// TestNewSearchReActStyle: the style has its own cache namespace, lookups are
// never cached, and only the local backend has the style.
func TestNewSearchReActStyle(t *testing.T) {
	ctx := context.Background()
	s := wikiStore(t)
	tool, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki", Style: "react"})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := tool.(*Cache)
	if !ok || !strings.HasSuffix(c.Backend, "+react") {
		t.Fatalf("tool = %#v, want a cache under a +react namespace", tool)
	}
	hist := WithToolHistory(ctx, []ToolCall{{turn.ActionSearch, "Salzburg"}})
	if o, err := tool.Call(ctx, "search", "Salzburg"); err != nil || o.Text != salzburgObs || o.Cached {
		t.Fatalf("first search = %+v, %v", o, err)
	}
	if o, _ := tool.Call(ctx, "search", "Salzburg"); !o.Cached || o.Text != salzburgObs {
		t.Fatalf("second search not from the cache: %+v", o)
	}
	for i, want := range []string{river1, river1} { // the same history twice: the same answer, never cached
		if o, err := tool.Call(hist, "lookup", "river"); err != nil || o.Text != want || o.Cached {
			t.Fatalf("lookup %d = %+v, %v", i, o, err)
		}
	}
	if _, ok, _ := s.CacheGet(ctx, c.Backend, "river"); ok {
		t.Fatal("a lookup was cached")
	}
	// The FireAct style's cache is another namespace: its snippet answers there.
	fa, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := fa.Call(ctx, "search", "Salzburg"); o.Cached || o.Text == salzburgObs {
		t.Fatalf("FireAct-style search answered from the ReAct cache: %+v", o)
	}
	if _, err := NewSearch(ctx, s, SearchOptions{Backend: SearchReplay, Corpus: "wiki", Style: "react"}); err == nil || !strings.Contains(err.Error(), "local") {
		t.Fatalf("react style on replay: %v", err)
	}
	if _, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki", Style: "google"}); err == nil || !strings.Contains(err.Error(), `unknown search style "google"`) {
		t.Fatalf("unknown style: %v", err)
	}
}

// wikiTeacher is an OpenAI-compatible completions server that plays scripted
// ReAct turns per question (tagged "(qN)" in its text): turn k of question N
// is script[N][k], chosen by the observations after the question.
type wikiTeacher struct {
	script map[int][]string
	// reask answers a re-ask (a prompt ending in "Action:").
	reask string
}

var qTag = regexp.MustCompile(`\(q(\d+)\)`)

func (w *wikiTeacher) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Prompt string `json:"prompt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(rw, err.Error(), 400)
		return
	}
	ms := qTag.FindAllStringSubmatchIndex(req.Prompt, -1)
	if len(ms) == 0 {
		http.Error(rw, `{"error":{"message":"no question"}}`, 400)
		return
	}
	last := ms[len(ms)-1]
	var q int
	fmt.Sscan(req.Prompt[last[2]:last[3]], &q)
	k := strings.Count(req.Prompt[last[1]:], "\nObservation")
	reply := ""
	switch {
	case strings.HasSuffix(req.Prompt, "Action:"):
		reply = w.reask
	case k < len(w.script[q]):
		reply = w.script[q][k]
	default:
		reply = " Out of script.\nAction: finish[none]"
	}
	body := map[string]any{"id": "c", "object": "text_completion", "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "text": reply, "finish_reason": "stop"}},
		"usage":   map[string]int{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(body)
}

func act(thought, action string) string { return " " + thought + "\nAction: " + action }

// TestReActWikiEpisodes runs whole episodes with ReAct's Wikipedia semantics
// through RunTask: a teacher over HTTP on 127.0.0.1 searches, looks up and
// finishes; three questions run at once on one search tool, each with its own
// lookup position; the episodes are recorded with their lookup steps.
func TestReActWikiEpisodes(t *testing.T) {
	ctx := context.Background()
	s := wikiStore(t)
	ts := &wikiTeacher{script: map[int][]string{
		0: {act("Find Mozart's birthplace.", "search[Wolfgang Amadeus Mozart]"), act("He was born in Salzburg.", "search[Salzburg]"),
			act("Which river?", "lookup[river]"), act("More.", "lookup[river]"), act("More.", "lookup[river]"),
			act("It is the Salzach.", "finish[Salzach]")},
		1: {act("Start at Salzburg.", "search[Salzburg]"), act("Try a phrase.", "search[Mozart Salzburg birthplace]"),
			act("Look up the river on the Salzburg page.", "lookup[river]"), act("Go to the river.", "search[Salzach]"),
			act("Look up river there.", "lookup[river]"), act("It is the Salzach.", "finish[Salzach]")},
		2: {act("Look before searching.", "lookup[river]"), act("Guess.", "finish[Inn]")},
	}}
	srv := httptest.NewServer(ts)
	defer srv.Close()
	llm, err := NewOpenAI(OpenAIOptions{Model: "gpt-3.5-turbo-instruct", BaseURL: srv.URL + "/v1", Key: "k", Completions: true, Concurrency: 3,
		Retry: &Retry{MaxAttempts: 1, Base: time.Millisecond, MaxDelay: time.Millisecond, AttemptTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	so := SearchOptions{Backend: SearchLocal, Corpus: "wiki", Style: SearchStyleReAct}
	search, err := NewSearch(ctx, s, so)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAgent(AgentOptions{Method: "react", Format: "fewshot", Task: "hotpotqa", SearchStyle: SearchStyleReAct}, search)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Lookup || !strings.Contains(a.Prompt.FewShot, "lookup[keyword]") || !strings.Contains(a.Prompt.FewShot, "Action: lookup[river]\nObservation: (Result 1 / 1) The old town lies on the left bank of the Salzach river..") {
		t.Fatalf("agent lookup %v, prompt:\n%s", a.Lookup, a.Prompt.FewShot)
	}
	a.LLM = llm
	task := &tasks.Static{TaskName: "hotpotqa", SplitName: "dev", Scorer: metrics.QA}
	for i := 0; i < 3; i++ {
		task.Questions = append(task.Questions, tasks.Question{Index: i, Text: fmt.Sprintf("Which river flows through Mozart's birthplace? (q%d)", i), Gold: "Salzach"})
	}
	cfg := NewRunConfig(nil, a, so)
	if cfg.SearchStyle != SearchStyleReAct {
		t.Fatalf("run config search_style = %q", cfg.SearchStyle)
	}
	spec := RunSpec{Store: s, Task: task, Agent: a, Indices: []int{0, 1, 2}, Concurrency: 3,
		Run: cfg.StoreRun("wiki-react", store.KindGenerate, "hotpotqa", "dev")}
	rep, err := RunTask(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ran != 3 || rep.Errors != 0 {
		t.Fatalf("report %+v", rep)
	}
	notFound, err := search.Call(ctx, "search", "Mozart Salzburg birthplace")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]string{
		0: {mozartObs, salzburgObs, river1, river2, wikienv.NoMoreResults, "Episode finished, reward = True"},
		// A search that finds no page keeps the last page for lookup.
		1: {salzburgObs, notFound.Text, river1, "The Salzach is a river in Austria and Germany. It flows through Salzburg..",
			"(Result 1 / 1) The Salzach is a river in Austria and Germany.", "Episode finished, reward = True"},
		2: {wikienv.NoMoreResults, "Episode finished, reward = False"},
	}
	eps, err := s.Episodes(ctx, rep.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		q, _ := s.Question(ctx, ep.QuestionID)
		steps, err := s.Steps(ctx, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range steps {
			got = append(got, st.Observation)
		}
		if strings.Join(got, "\n") != strings.Join(want[q.Index], "\n") {
			t.Errorf("question %d observations:\n%s\nwant\n%s", q.Index, strings.Join(got, "\n"), strings.Join(want[q.Index], "\n"))
		}
		if q.Index == 0 && (steps[2].Action != "lookup" || steps[2].Argument != "river") {
			t.Errorf("question 0 step 3 = %s[%s]", steps[2].Action, steps[2].Argument)
		}
	}
	// Resuming under the FireAct style is refused, naming the field.
	fa := cfg
	fa.SearchStyle = ""
	if err := CheckResume(rep.Run.Config, fa); err == nil || !strings.Contains(err.Error(), "search_style") {
		t.Fatalf("CheckResume across styles: %v", err)
	}
	if err := CheckResume(rep.Run.Config, cfg); err != nil {
		t.Fatalf("CheckResume same config: %v", err)
	}
}

// TestLookupRefusedInFireActStyle: an agent whose search has no lookup reads
// a lookup as a malformed action and re-asks, as before lookup was parsed.
func TestLookupRefusedInFireActStyle(t *testing.T) {
	ctx := context.Background()
	s := wikiStore(t)
	ts := &wikiTeacher{script: map[int][]string{0: {act("Look it up.", "lookup[river]")}}, reask: " finish[Salzach]"}
	srv := httptest.NewServer(ts)
	defer srv.Close()
	llm, err := NewOpenAI(OpenAIOptions{Model: "gpt-3.5-turbo-instruct", BaseURL: srv.URL + "/v1", Key: "k", Completions: true,
		Retry: &Retry{MaxAttempts: 1, Base: time.Millisecond, MaxDelay: time.Millisecond, AttemptTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	search, err := NewSearch(ctx, s, SearchOptions{Backend: SearchLocal, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAgent(AgentOptions{Method: "react", Format: "fewshot", Task: "hotpotqa"}, search)
	if err != nil {
		t.Fatal(err)
	}
	if a.Lookup || strings.Contains(a.Prompt.FewShot, "lookup") {
		t.Fatal("FireAct-style agent has lookup")
	}
	a.LLM = llm
	res, err := a.Solve(ctx, Query{Text: "Which river? (q0)", Gold: "Salzach"})
	if err != nil {
		t.Fatal(err)
	}
	st := res.Trajectory.Steps
	if len(st) != 1 || st[0].Action != "finish" || st[0].Argument != "Salzach" || !strings.Contains(res.Info[0].Raw, "lookup[river]") {
		t.Fatalf("steps %+v, raw %q", st, res.Info[0].Raw)
	}
}
