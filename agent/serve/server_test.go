package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/fireact/fireact/llama"
)

func TestModelsEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	list, err := f.client("").ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list.Models {
		ids = append(ids, m.ID)
	}
	if want := []string{"tiny", "tiny+a", "tiny+b"}; !slices.Equal(ids, want) {
		t.Fatalf("models %v, want %v", ids, want)
	}
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"tiny+a", 200},
		{"tiny", 200},
		{"tiny+c", 404},
		{"other", 404},
	} {
		_, err := f.client("").GetModel(ctx, tc.name)
		status := 200
		if err != nil {
			status, _ = apiError(t, err)
		}
		if status != tc.status {
			t.Errorf("GET /v1/models/%s: status %d, want %d (%v)", tc.name, status, tc.status, err)
		}
	}
}

func TestCompletions(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := f.client("")
	const prompt = "Question: what is the capital of France? Thought:"
	ref := f.direct(t, prompt, "", 12)
	promptToks, err := f.model.Tokenize(prompt, llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	// A stop string taken from the reference output must cut the text right before it.
	words := strings.Fields(ref.Text)
	if len(words) < 3 {
		t.Fatalf("reference output too short to pick a stop string: %q", ref.Text)
	}
	stop := " " + words[2]
	stopAt := strings.Index(ref.Text, stop)

	for _, tc := range []struct {
		name       string
		req        openai.CompletionRequest
		wantText   string
		wantFinish string
	}{
		{"greedy", openai.CompletionRequest{Model: "tiny", Prompt: prompt, MaxTokens: 12}, ref.Text, "length"},
		{"stop", openai.CompletionRequest{Model: "tiny", Prompt: prompt, MaxTokens: 12, Stop: []string{stop}}, ref.Text[:stopAt], "stop"},
		{"prompt list", openai.CompletionRequest{Model: "tiny", Prompt: []string{prompt}, MaxTokens: 12}, ref.Text, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.CreateCompletion(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Choices) != 1 || resp.Choices[0].Text != tc.wantText || resp.Choices[0].FinishReason != tc.wantFinish {
				t.Fatalf("choices %+v, want text %q finish %q", resp.Choices, tc.wantText, tc.wantFinish)
			}
			if resp.Object != "text_completion" || resp.Model != "tiny" || !strings.HasPrefix(resp.ID, "cmpl-") {
				t.Errorf("envelope %q %q %q", resp.Object, resp.Model, resp.ID)
			}
			if resp.Usage.PromptTokens != len(promptToks) || resp.Usage.CompletionTokens == 0 ||
				resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
				t.Errorf("usage %+v, prompt has %d tokens", resp.Usage, len(promptToks))
			}
		})
	}

	// The same prompt again: the engine reuses its cached KV cells and says so.
	again, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: prompt, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d := again.Usage.PromptTokensDetails; d == nil || d.CachedTokens == 0 || d.CachedTokens > len(promptToks) {
		t.Errorf("repeated prompt: prompt token details %+v, want cached tokens in (0, %d]", d, len(promptToks))
	}

	// Sampling with a seed is reproducible, and different seeds differ.
	seeded := func(seed int) string {
		resp, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: prompt, MaxTokens: 24,
			Temperature: 1.5, TopP: 1, Seed: &seed})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Choices[0].Text
	}
	if a, b := seeded(7), seeded(7); a != b {
		t.Errorf("seed 7 gave %q then %q", a, b)
	}
	if a, b := seeded(7), seeded(8); a == b {
		t.Errorf("seeds 7 and 8 both gave %q", a)
	}

	// n choices with a seed: consecutive seeds, so they differ.
	resp, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: prompt, MaxTokens: 24,
		Temperature: 1.5, N: 3, Seed: func() *int { s := 3; return &s }()})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 3 || resp.Usage.PromptTokens != len(promptToks) {
		t.Fatalf("n=3: %d choices, usage %+v", len(resp.Choices), resp.Usage)
	}
	for i, ch := range resp.Choices {
		if ch.Index != i {
			t.Errorf("choice %d has index %d", i, ch.Index)
		}
	}
}

func TestCompletionErrors(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxTokens = 64 })
	ctx := context.Background()
	c := f.client("")
	long := strings.Repeat("search the film ", 3000)
	for _, tc := range []struct {
		name   string
		req    openai.CompletionRequest
		status int
		code   string
	}{
		{"unknown model", openai.CompletionRequest{Model: "nope", Prompt: "hi"}, 404, "model_not_found"},
		{"unknown adapter", openai.CompletionRequest{Model: "tiny+zzz", Prompt: "hi"}, 404, "model_not_found"},
		{"max_tokens over the cap", openai.CompletionRequest{Model: "tiny", Prompt: "hi", MaxTokens: 65}, 400, "max_tokens_too_large"},
		{"prompt longer than the context", openai.CompletionRequest{Model: "tiny", Prompt: long}, 400, "context_length_exceeded"},
		{"too many choices", openai.CompletionRequest{Model: "tiny", Prompt: "hi", N: 17}, 400, "invalid_request"},
		{"temperature out of range", openai.CompletionRequest{Model: "tiny", Prompt: "hi", Temperature: 3}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateCompletion(ctx, tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if status, code := apiError(t, err); status != tc.status || code != tc.code {
				t.Fatalf("status %d code %q, want %d %q (%v)", status, code, tc.status, tc.code, err)
			}
		})
	}
	// The error body has OpenAI's shape exactly.
	resp, err := http.Post(f.url+"/v1/completions", "application/json", strings.NewReader(`{"model":"nope","prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	e := body["error"]
	if resp.StatusCode != 404 || e["message"] == "" || e["type"] != ErrTypeInvalidRequest || e["code"] != "model_not_found" {
		t.Fatalf("status %d body %v", resp.StatusCode, body)
	}
}

func TestAdapterChoicePerRequest(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := f.client("")
	const prompt = "Thought: I need to search the director of the film"
	texts := map[string]string{}
	for _, tc := range []struct{ model, adapter string }{{"tiny", ""}, {"tiny+a", "a"}, {"tiny+b", "b"}} {
		resp, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: tc.model, Prompt: prompt, MaxTokens: 16})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Choices[0].Text
		if want := f.direct(t, prompt, tc.adapter, 16).Text; got != want {
			t.Errorf("%s: %q, engine with adapter %q gives %q", tc.model, got, tc.adapter, want)
		}
		if resp.Model != tc.model {
			t.Errorf("response model %q, want %q", resp.Model, tc.model)
		}
		texts[tc.model] = got
	}
	if texts["tiny"] == texts["tiny+a"] || texts["tiny"] == texts["tiny+b"] || texts["tiny+a"] == texts["tiny+b"] {
		t.Fatalf("adapters made no difference: %q", texts)
	}
}

func TestChat(t *testing.T) {
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessage{
		{Role: "system", Content: "You answer questions."},
		{Role: "user", Content: "Who directed the film?"},
	}
	t.Run("no template", func(t *testing.T) {
		f := newFixture(t, nil)
		_, err := f.client("").CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "tiny", Messages: msgs})
		status, code := apiError(t, err)
		if status != 400 || code != "no_chat_template" || !strings.Contains(err.Error(), "--chat-template") {
			t.Fatalf("status %d code %q: %v", status, code, err)
		}
	})
	t.Run("bad template name", func(t *testing.T) {
		m, _ := newTinyModel(t, t.TempDir(), "")
		e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{NCtx: 512, NSeqMax: 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if _, err := New(Config{Engine: e, BaseName: "tiny", ChatTemplate: "no-such-template-name"}); err == nil {
			t.Fatal("New accepted an unknown chat template")
		}
	})
	t.Run("chatml", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.ChatTemplate = "chatml" })
		text, err := f.model.ApplyChatTemplate("chatml", []llama.ChatMessage{
			{Role: "system", Content: "You answer questions."}, {Role: "user", Content: "Who directed the film?"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		want := f.direct(t, text, "b", 10).Text
		resp, err := f.client("").CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "tiny+b", Messages: msgs, MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != want || resp.Choices[0].Message.Role != "assistant" {
			t.Fatalf("choices %+v, want content %q", resp.Choices, want)
		}
		if resp.Object != "chat.completion" || resp.Usage.CompletionTokens == 0 || resp.Usage.PromptTokens == 0 {
			t.Fatalf("object %q usage %+v", resp.Object, resp.Usage)
		}
		// Content given as an array of text parts is the same message.
		parts := []openai.ChatCompletionMessage{msgs[0], {Role: "user", MultiContent: []openai.ChatMessagePart{
			{Type: "text", Text: "Who directed "}, {Type: "text", Text: "the film?"}}}}
		resp, err = f.client("").CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "tiny+b", Messages: parts, MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content != want {
			t.Fatalf("multi-part content gave %q, want %q", resp.Choices[0].Message.Content, want)
		}
	})
}

func TestStreaming(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ChatTemplate = "chatml" })
	ctx := context.Background()
	c := f.client("")
	const prompt = "Question: which magazine was started first? Thought: I need to"
	for _, model := range []string{"tiny", "tiny+a"} {
		t.Run("completion "+model, func(t *testing.T) {
			want, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: model, Prompt: prompt, MaxTokens: 20})
			if err != nil {
				t.Fatal(err)
			}
			stream, err := c.CreateCompletionStream(ctx, openai.CompletionRequest{Model: model, Prompt: prompt, MaxTokens: 20,
				Stream: true, StreamOptions: &openai.StreamOptions{IncludeUsage: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			var text strings.Builder
			var finish string
			var usage *openai.Usage
			chunks := 0
			for {
				r, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				chunks++
				if r.Usage != nil {
					usage = r.Usage
				}
				for _, ch := range r.Choices {
					text.WriteString(ch.Text)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			if text.String() != want.Choices[0].Text || finish != want.Choices[0].FinishReason {
				t.Fatalf("streamed %q (%s), non-streamed %q (%s)", text.String(), finish, want.Choices[0].Text, want.Choices[0].FinishReason)
			}
			if chunks < 3 {
				t.Errorf("only %d chunks: not streamed", chunks)
			}
			// Cached tokens differ by design: the streamed request reuses the first one's cells.
			if usage == nil || want.Usage == nil || usage.PromptTokens != want.Usage.PromptTokens ||
				usage.CompletionTokens != want.Usage.CompletionTokens || usage.TotalTokens != want.Usage.TotalTokens {
				t.Errorf("stream usage %+v, want %+v", usage, want.Usage)
			}
		})
	}
	t.Run("chat", func(t *testing.T) {
		msgs := []openai.ChatCompletionMessage{{Role: "user", Content: "Who directed the film?"}}
		want, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "tiny+a", Messages: msgs, MaxTokens: 16})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: "tiny+a", Messages: msgs, MaxTokens: 16, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		var text strings.Builder
		var role string
		var finish openai.FinishReason
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Object != "chat.completion.chunk" || r.Usage != nil {
				t.Fatalf("chunk object %q usage %v", r.Object, r.Usage)
			}
			for _, ch := range r.Choices {
				if ch.Delta.Role != "" {
					role = ch.Delta.Role
				}
				text.WriteString(ch.Delta.Content)
				if ch.FinishReason != "" {
					finish = ch.FinishReason
				}
			}
		}
		if role != "assistant" || text.String() != want.Choices[0].Message.Content || finish != want.Choices[0].FinishReason {
			t.Fatalf("streamed role %q text %q finish %q; want %q %q", role, text.String(), finish, want.Choices[0].Message.Content, want.Choices[0].FinishReason)
		}
	})
	t.Run("raw SSE framing", func(t *testing.T) {
		resp, err := http.Post(f.url+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"tiny","prompt":"Thought:","max_tokens":4,"stream":true}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
		if len(events) < 2 || events[len(events)-1] != "data: [DONE]" {
			t.Fatalf("events %q", events)
		}
		for _, ev := range events[:len(events)-1] {
			var chunk CompletionResponse
			if !strings.HasPrefix(ev, "data: ") || json.Unmarshal([]byte(ev[6:]), &chunk) != nil || len(chunk.Choices) != 1 {
				t.Fatalf("bad event %q", ev)
			}
		}
	})
}

// TestConcurrentClients: 32 clients at once, mixing the base and both adapters,
// get exactly the answers they get one at a time.
func TestConcurrentClients(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := f.client("")
	models := []string{"tiny", "tiny+a", "tiny+b"}
	const n = 32
	req := func(i int) openai.CompletionRequest {
		return openai.CompletionRequest{Model: models[i%3], MaxTokens: 16,
			Prompt: fmt.Sprintf("Question %d: who wrote the book about the river? Thought:", i%8)}
	}
	sequential := make([]string, n)
	for i := range n {
		resp, err := c.CreateCompletion(ctx, req(i))
		if err != nil {
			t.Fatal(err)
		}
		sequential[i] = resp.Choices[0].Text
	}
	concurrent := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Half of the clients stream, so both paths run side by side.
			r := req(i)
			if i%2 == 0 {
				resp, err := c.CreateCompletion(ctx, r)
				if err == nil {
					concurrent[i] = resp.Choices[0].Text
				}
				errs[i] = err
				return
			}
			r.Stream = true
			stream, err := c.CreateCompletionStream(ctx, r)
			if err != nil {
				errs[i] = err
				return
			}
			defer stream.Close()
			var sb strings.Builder
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errs[i] = err
					return
				}
				for _, ch := range chunk.Choices {
					sb.WriteString(ch.Text)
				}
			}
			concurrent[i] = sb.String()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("client %d: %v", i, errs[i])
		} else if concurrent[i] != sequential[i] {
			t.Errorf("client %d (%s): concurrent %q, sequential %q", i, models[i%3], concurrent[i], sequential[i])
		}
	}
}

func TestAuth(t *testing.T) {
	const key = "sk-test-0123456789"
	f := newFixture(t, func(c *Config) { c.APIKey = key })
	ctx := context.Background()
	for _, tc := range []struct {
		name, key string
		status    int
	}{
		{"no key", "", 401},
		{"wrong key", "sk-test-0123456780", 401},
		{"prefix of the key", "sk-test", 401},
		{"right key", key, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client(tc.key).CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: "hi", MaxTokens: 2})
			status := 200
			if err != nil {
				status, _ = apiError(t, err)
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, err)
			}
		})
	}
	for path, want := range map[string]int{"/health": 200, "/metrics": 401, "/v1/models": 401} {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a key: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	big := `{"model":"tiny","prompt":"` + strings.Repeat("a", 100<<10) + `"}`
	t.Run("oversized body with length", func(t *testing.T) {
		resp, err := http.Post(f.url+"/v1/completions", "application/json", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("oversized chunked body", func(t *testing.T) {
		// No Content-Length: the limit must be enforced while reading.
		req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("body within the limit", func(t *testing.T) {
		resp, err := http.Post(f.url+"/v1/completions", "application/json", bytes.NewReader([]byte(`{"model":"tiny","prompt":"hi","max_tokens":2}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// TestTimeout: a request over the time limit gets 504, and its engine slot is
// freed for the next request.
func TestTimeout(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Timeout = 30 * time.Millisecond; c.MaxTokens = 4000 })
	ctx := context.Background()
	c := f.client("")
	// Thousands of tokens take seconds on one thread; the limit cuts them short.
	_, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 4000})
	if status, code := apiError(t, err); status != http.StatusGatewayTimeout || code != "timeout" {
		t.Fatalf("status %d code %q (%v), want 504 timeout", status, code, err)
	}
	// Streamed: the error arrives as an event after the stream began.
	stream, err := c.CreateCompletionStream(ctx, openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 4000, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
	}
	stream.Close()
	if err == io.EOF || !strings.Contains(err.Error(), "longer than the server's limit") {
		t.Fatalf("stream ended with %v, want the timeout error", err)
	}
	// Each slot was freed: the engine serves a full batch right after.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 2}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := f.client("")
	for range 3 {
		if _, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny+a", Prompt: "Thought:", MaxTokens: 3}); err != nil {
			t.Fatal(err)
		}
	}
	c.CreateCompletion(ctx, openai.CompletionRequest{Model: "nope", Prompt: "x"})

	resp, err := http.Get(f.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h HealthStatus
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h.Status != "ok" || len(h.Models) != 3 {
		t.Fatalf("health %d %+v", resp.StatusCode, h)
	}

	resp, err = http.Get(f.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`fireact_http_requests_total{endpoint="completions",code="200"} 3`,
		`fireact_http_requests_total{endpoint="completions",code="404"} 1`,
		`fireact_http_requests_total{endpoint="health",code="200"} 1`,
		`fireact_http_request_duration_seconds_bucket{endpoint="completions",le="+Inf"} 4`,
		`fireact_http_request_duration_seconds_count{endpoint="completions"} 4`,
		"fireact_completion_tokens_total 9",
		"fireact_engine_generated_tokens_total 9",
		"fireact_http_requests_in_flight 1", // this scrape
		"fireact_engine_slots 8",
		"# TYPE fireact_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Every sample line is "name{labels} value" or "name value".
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || !strings.HasPrefix(fields[0], "fireact_") {
			t.Errorf("malformed sample %q", line)
		}
	}
}
