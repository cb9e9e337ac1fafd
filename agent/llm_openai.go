package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// OpenAIKeyEnv is the environment variable holding the API key (never a flag,
// never stored).
const OpenAIKeyEnv = "OPENAI_API_KEY"

// OpenAIOptions configure an OpenAI-compatible backend.
type OpenAIOptions struct {
	Model string
	// BaseURL of the API ("https://api.openai.com/v1" when empty); any
	// OpenAI-compatible server works (vLLM, llama-server, fireact serve).
	BaseURL string
	// Key is the API key; "" reads OPENAI_API_KEY (servers that need none
	// accept any).
	Key string
	// Completions sends few-shot and alpaca prompts to /completions; by
	// default they go to /chat/completions as one user message, which is how
	// FireAct prompted its chat-model teachers. Chat-format requests always use
	// /chat/completions.
	Completions bool
	// Concurrency bounds the requests in flight (0: 4).
	Concurrency int
	// Price overrides the price table (zero: look the model up).
	Price Price
	// Retry tunes retries (attempts, backoff, per-attempt timeout); nil uses
	// the defaults with a 120 s attempt timeout.
	Retry *Retry
	// HTTPClient's transport is wrapped by the retry layer (nil: default).
	HTTPClient *http.Client
}

// OpenAI is an LLM served by an OpenAI-compatible API through go-openai.
type OpenAI struct {
	client *openai.Client
	opts   OpenAIOptions
	price  Price
	sem    chan struct{}
	retry  *Retry
}

// NewOpenAI returns an OpenAI-compatible backend.
func NewOpenAI(opts OpenAIOptions) (*OpenAI, error) {
	if opts.Model == "" {
		return nil, errors.New("openai: a model name is required")
	}
	key := opts.Key
	if key == "" {
		key = os.Getenv(OpenAIKeyEnv)
	}
	if key == "" && opts.BaseURL == "" {
		return nil, fmt.Errorf("openai: set %s (or --base-url for a server that needs no key)", OpenAIKeyEnv)
	}
	cfg := openai.DefaultConfig(key)
	if opts.BaseURL != "" {
		cfg.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	}
	retry := opts.Retry
	if retry == nil {
		retry = &Retry{AttemptTimeout: 120 * time.Second}
	}
	hc := &http.Client{}
	if opts.HTTPClient != nil {
		*hc = *opts.HTTPClient
	}
	if retry.Next == nil {
		retry.Next = hc.Transport
	}
	hc.Transport = retry
	cfg.HTTPClient = explicitSampling{next: hc}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 4
	}
	price := opts.Price
	if price == (Price{}) {
		price, _ = PriceOf(opts.Model)
	}
	return &OpenAI{client: openai.NewClientWithConfig(cfg), opts: opts, price: price,
		sem: make(chan struct{}, conc), retry: retry}, nil
}

// Retries returns the number of HTTP retries made so far.
func (o *OpenAI) Retries() int64 { return o.retry.Retries.Load() }

// Complete implements LLM.
func (o *OpenAI) Complete(ctx context.Context, req Request) (Response, error) {
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
	defer func() { <-o.sem }()
	start := time.Now()
	var (
		r   Response
		err error
	)
	ctx = context.WithValue(ctx, samplingKey{}, wireSamplingOf(req))
	if req.Messages == nil && o.opts.Completions {
		r, err = o.completion(ctx, req)
	} else {
		r, err = o.chat(ctx, req)
	}
	if err != nil {
		return Response{}, fmt.Errorf("openai %s: %w", o.opts.Model, err)
	}
	r.Latency = time.Since(start)
	r.Cost = o.price.Cost(r.PromptTokens, r.GeneratedTokens)
	if req.OnText != nil {
		if err := req.OnText(r.Text); err != nil {
			return Response{}, err
		}
	}
	return r, nil
}

func (o *OpenAI) completion(ctx context.Context, req Request) (Response, error) {
	cr := openai.CompletionRequest{
		Model: o.opts.Model, Prompt: req.Prompt, Stop: req.Stop, MaxTokens: req.MaxTokens,
	}
	if req.Seed != 0 {
		seed := int(req.Seed)
		cr.Seed = &seed
	}
	resp, err := o.client.CreateCompletion(ctx, cr)
	if err != nil {
		return Response{}, err
	}
	if len(resp.Choices) == 0 {
		return Response{}, errors.New("completion with no choices")
	}
	r := Response{Text: trimStops(resp.Choices[0].Text, req.Stop), FinishReason: resp.Choices[0].FinishReason}
	if resp.Usage != nil {
		r.PromptTokens, r.GeneratedTokens, r.CachedTokens = resp.Usage.PromptTokens, resp.Usage.CompletionTokens, cachedTokens(*resp.Usage)
	}
	return r, nil
}

func (o *OpenAI) chat(ctx context.Context, req Request) (Response, error) {
	msgs := req.Messages
	if msgs == nil {
		msgs = []Message{{Role: "user", Content: req.Prompt}}
	}
	cm := make([]openai.ChatCompletionMessage, len(msgs))
	for i, m := range msgs {
		cm[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	cr := openai.ChatCompletionRequest{
		Model: o.opts.Model, Messages: cm, Stop: req.Stop, MaxTokens: req.MaxTokens,
	}
	if req.Seed != 0 {
		seed := int(req.Seed)
		cr.Seed = &seed
	}
	resp, err := o.client.CreateChatCompletion(ctx, cr)
	if err != nil {
		return Response{}, err
	}
	if len(resp.Choices) == 0 {
		return Response{}, errors.New("chat completion with no choices")
	}
	return Response{Text: trimStops(resp.Choices[0].Message.Content, req.Stop), FinishReason: string(resp.Choices[0].FinishReason),
		PromptTokens: resp.Usage.PromptTokens, GeneratedTokens: resp.Usage.CompletionTokens,
		CachedTokens: cachedTokens(resp.Usage)}, nil
}

// samplingKey is the context key of the wireSampling of one request.
type samplingKey struct{}

// wireSampling is the temperature and top_p a request puts on the wire.
type wireSampling struct {
	Temperature float64
	TopP        float64
}

// wireSamplingOf maps a request's sampling to the API's: top_p 0 means "off"
// here (as for the local engine), which the API spells 1; 0 itself would make
// vLLM refuse the request and other servers decode greedily.
func wireSamplingOf(req Request) wireSampling {
	w := wireSampling{Temperature: max(req.Temperature, 0), TopP: req.TopP}
	if w.TopP <= 0 || w.TopP > 1 {
		w.TopP = 1
	}
	return w
}

// explicitSampling writes temperature and top_p into every request body
// whose context carries a wireSampling. go-openai tags both fields omitempty,
// so a temperature of 0 never leaves the client and the server samples at its
// default (1.0 for OpenAI and vLLM): a greedy teacher would be sampled.
// go-openai offers no way to send an explicit zero, so the JSON body is
// patched on its way to the transport.
type explicitSampling struct {
	next openai.HTTPDoer
}

// Do implements openai.HTTPDoer.
func (e explicitSampling) Do(req *http.Request) (*http.Response, error) {
	ws, ok := req.Context().Value(samplingKey{}).(wireSampling)
	if !ok || req.Body == nil || req.Method != http.MethodPost {
		return e.next.Do(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("request body to %s is not a JSON object: %w", req.URL.Path, err)
	}
	// float64 values marshal as written (0.7, not float32's 0.699999988).
	fields["temperature"], _ = json.Marshal(ws.Temperature)
	fields["top_p"], _ = json.Marshal(ws.TopP)
	if body, err = json.Marshal(fields); err != nil {
		return nil, fmt.Errorf("encode request body: %w", err)
	}
	rq := req.Clone(req.Context())
	rq.Body = io.NopCloser(bytes.NewReader(body))
	rq.ContentLength = int64(len(body))
	rq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return e.next.Do(rq)
}

func cachedTokens(u openai.Usage) int {
	if u.PromptTokensDetails != nil {
		return u.PromptTokensDetails.CachedTokens
	}
	return 0
}

// trimStops cuts text at the first stop string: servers that ignore or
// cap the stop list (OpenAI takes at most 4) must not let the model write the
// observation itself.
func trimStops(text string, stops []string) string {
	cut := len(text)
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && i < cut {
			cut = i
		}
	}
	return text[:cut]
}
