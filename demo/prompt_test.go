package demo

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/world"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// stories260K is karpathy's tiny TinyStories llama: a real GGUF with a real SPM
// tokenizer, loaded vocabulary-only to render chat templates.
const stories260K = "../../shared/data/models/stories260K.gguf"

// recorder is an agent.LLM that keeps every request the agent sends to the
// LLM it wraps: the prompts of each turn, exactly as a backend receives them.
type recorder struct {
	inner agent.LLM
	mu    sync.Mutex
	reqs  []agent.Request
}

func (r *recorder) Complete(ctx context.Context, req agent.Request) (agent.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.inner.Complete(ctx, req)
}

// wireMessages sends one chat request through the OpenAI backend to a server on
// 127.0.0.1 and returns the messages as they arrived in the request body.
func wireMessages(t *testing.T, req agent.Request) []dataformat.Message {
	t.Helper()
	var got []dataformat.Message
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []dataformat.Message `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = body.Messages
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"c","object":"chat.completion","model":"student","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
	}))
	defer srv.Close()
	llm, err := agent.NewOpenAI(agent.OpenAIOptions{Model: "ft:student", BaseURL: srv.URL + "/v1", Key: "test-key"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := llm.Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestEvalPromptIsTrainingPrefix checks, for every prompt format, that what the
// agent sends a model at each turn of an episode is exactly the start of the
// training text finetune renders from that episode's trajectory: a student is
// evaluated on the text it was trained on, never on a prompt it never saw. The
// episodes are the demo teacher's in the real agent loop with the real local
// search; for chat, both the message list (as the OpenAI backend puts it on the
// wire) and its rendering through a chat template are checked.
func TestEvalPromptIsTrainingPrefix(t *testing.T) {
	ctx := context.Background()
	w := world.New(world.DefaultConfig())
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	docs := w.Docs()
	for i := range docs {
		docs[i].Corpus = "world"
	}
	if err := s.AddCorpusDocs(ctx, docs); err != nil {
		t.Fatal(err)
	}
	m, err := llama.LoadModel(stories260K, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	templates := []string{"chatml", "llama3"}
	// Questions as the data has them, one with the trailing spaces some of
	// FireAct's released questions have (FireAct strips them for alpaca).
	qs := append([]world.Question(nil), w.Train[:3]...)
	spaced := w.Train[3]
	spaced.Text += "  "
	w.Train = append(w.Train, spaced)
	qs = append(qs, spaced)

	for _, method := range []agent.Method{agent.ReAct(), agent.CoT()} {
		for _, f := range []agent.Format{agent.FormatFewShot, agent.FormatAlpaca, agent.FormatChat} {
			rec := &recorder{inner: world.NewOracle(w)}
			// The few-shot prompt is set in every format, as the CLI sets it:
			// only the few-shot format may show it.
			fewshot := agent.FewShotPrompt("hotpotqa", method)
			a := &agent.Agent{LLM: rec, Search: &agent.LocalSearch{Store: s, Corpus: "world"}, Method: method,
				Prompt: agent.Prompt{Format: f, FewShot: fewshot}}
			for _, q := range qs {
				rec.reqs = nil
				res, err := a.Solve(ctx, agent.Query{Text: q.Text, Gold: q.Answer})
				if err != nil {
					t.Fatal(err)
				}
				tr := res.Trajectory
				if len(rec.reqs) == 0 || len(tr.Steps) == 0 {
					t.Fatalf("%s/%s: %d requests, %d steps", method.Name, f, len(rec.reqs), len(tr.Steps))
				}
				name := method.Name + "/" + string(f) + "/" + q.Text
				switch f {
				case agent.FormatFewShot:
					// FireAct keeps the trajectory as the prompt's continuation.
					train := fewshot + tr.Question + "\n" + trajectory.Render(tr)
					for i, req := range rec.reqs {
						if !strings.HasPrefix(train, req.Prompt) {
							t.Errorf("%s: turn %d prompt is not a prefix of the trajectory text:\nprompt %q\ntext   %q", name, i, req.Prompt, train)
						}
					}
				case agent.FormatAlpaca:
					segs, err := finetune.Segments(tr, finetune.TemplateAlpaca, nil, "")
					if err != nil {
						t.Fatal(err)
					}
					train := joinText(segs)
					for i, req := range rec.reqs {
						if !strings.HasPrefix(train, req.Prompt) {
							t.Errorf("%s: turn %d prompt is not a prefix of the training text:\nprompt %q\ntext   %q", name, i, req.Prompt, train)
						}
					}
				case agent.FormatChat:
					train := dataformat.ChatMessages(tr)
					for i, req := range rec.reqs {
						wire := wireMessages(t, req)
						if !messagesPrefix(wire, train) {
							t.Errorf("%s: turn %d messages on the wire are not the start of the training messages:\nsent  %q\ntrain %q", name, i, wire, train)
							continue
						}
						msgs := make([]llama.ChatMessage, len(req.Messages))
						for k, x := range req.Messages {
							msgs[k] = llama.ChatMessage{Role: x.Role, Content: x.Content}
						}
						for _, tmpl := range templates {
							// What the local backend renders (agent.LocalLLM) ...
							prompt, err := m.ApplyChatTemplate(tmpl, msgs, true)
							if err != nil {
								t.Fatal(err)
							}
							// ... and what finetune trains on.
							segs, err := finetune.Segments(tr, finetune.TemplateChat, m, tmpl)
							if err != nil {
								t.Fatal(err)
							}
							if text := joinText(segs); !strings.HasPrefix(text, prompt) {
								t.Errorf("%s: %s: turn %d prompt is not a prefix of the training text:\nprompt %q\ntext   %q", name, tmpl, i, prompt, text)
							}
						}
					}
				}
			}
		}
	}
}

func joinText(segs []finetune.Segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
	}
	return b.String()
}

// messagesPrefix reports whether a is the start of b, role and content.
func messagesPrefix(a, b []dataformat.Message) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
