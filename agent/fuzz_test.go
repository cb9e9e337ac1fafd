package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fuzzReply is the HTTP reply the fuzzed OpenAI-compatible server gives.
type fuzzReply struct {
	status int
	body   []byte
}

// FuzzOpenAIResponse feeds arbitrary bodies and statuses of an
// OpenAI-compatible server through the whole client path: the retry layer,
// go-openai's decoding and our reading of choices and usage. It must never
// panic, never return text holding a stop string, and never read more than
// the retry layer's body cap.
func FuzzOpenAIResponse(f *testing.F) {
	seeds := []string{
		`{"id":"chatcmpl-8abc","object":"chat.completion","created":1701000000,"model":"gpt-3.5-turbo-0613","choices":[{"index":0,"message":{"role":"assistant","content":"Thought: I need to search Paris.\nAction: search[Paris]\nObservation: x"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":512,"completion_tokens":20,"total_tokens":532,"prompt_tokens_details":{"cached_tokens":256}},"system_fingerprint":"fp_1"}`,
		`{"id":"cmpl-8abc","object":"text_completion","created":1701000000,"model":"gpt-3.5-turbo-instruct","choices":[{"text":" Paris.\nAction: finish[Paris]","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`,
		`{"error":{"message":"Rate limit reached for gpt-4 in organization org-x on tokens per min.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`,
		`{"object":"chat.completion","choices":[],"usage":null}`,
		`{"choices":[{"message":null,"finish_reason":null}],"usage":{"prompt_tokens":"x"}}`,
		`[]`, `null`, ``, `<html>502 Bad Gateway</html>`,
	}
	for _, s := range seeds {
		f.Add(uint8(0), []byte(s), false)
		f.Add(uint8(0), []byte(s), true)
	}
	f.Add(uint8(2), []byte(seeds[2]), false)
	var reply atomic.Pointer[fuzzReply]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp := reply.Load()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		w.Write(rp.body)
	}))
	defer srv.Close()
	const maxBody = 1 << 16
	clients := map[bool]*OpenAI{}
	for _, completions := range []bool{false, true} {
		llm, err := NewOpenAI(OpenAIOptions{Model: "gpt-3.5-turbo-instruct", BaseURL: srv.URL + "/v1", Key: "k",
			Completions: completions, Retry: &Retry{MaxAttempts: 1, MaxResponseBytes: maxBody}})
		if err != nil {
			f.Fatal(err)
		}
		clients[completions] = llm
	}
	statuses := []int{200, 400, 429, 500}
	stops := []string{"\nObservation"}
	f.Fuzz(func(t *testing.T, status uint8, body []byte, completions bool) {
		reply.Store(&fuzzReply{status: statuses[int(status)%len(statuses)], body: body})
		r, err := clients[completions].Complete(context.Background(), Request{Prompt: "Question: x", Stop: stops, MaxTokens: 16})
		if err != nil {
			return
		}
		if strings.Contains(r.Text, stops[0]) {
			t.Fatalf("text %q holds the stop string", r.Text)
		}
		if len(body) > maxBody {
			t.Fatalf("a %d-byte body over the %d-byte cap was accepted", len(body), maxBody)
		}
	})
}

// FuzzSerpAPIResponse feeds arbitrary bodies to the SerpAPI response parser
// and FireAct's answer order: no panic, and every body that is a JSON object
// gives a non-empty observation (an answer or "None").
func FuzzSerpAPIResponse(f *testing.F) {
	for _, s := range []string{
		serpBody(`{"type":"organic_result","title":"Paris","answer":"Paris","snippet":"Paris is the capital of France.","snippet_highlighted_words":["Paris"]}`, ""),
		serpBody(`[{"type":"organic_result","snippet":"first box"},{"snippet":"second"}]`, ""),
		serpBody(`{"type":"calculator_result","answer":42}`, `[{"position":1,"title":"T","link":"https://example.com","snippet":"organic","snippet_highlighted_words":["organic"]}]`),
		serpBody("", `[{"position":1,"title":"T","link":"https://example.com"}]`),
		serpBody("", `[]`),
		`{"error":"Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"}`,
		`{"error":{"code":1},"answer_box":null,"organic_results":"x"}`,
		`[]`, `null`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseSerp(body)
		if err != nil {
			return
		}
		if serpAnswer(r) == "" {
			t.Fatalf("empty observation for %q", body)
		}
	})
}
