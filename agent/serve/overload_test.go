package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// waitFor polls cond every 10 ms for up to limit: a bounded wait for a state
// another goroutine reaches, never a sleep that bets on timing.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// health reads GET /health.
func (f *fixture) health(t *testing.T) HealthStatus {
	t.Helper()
	resp, err := http.Get(f.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h HealthStatus
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestQueueFull: with every slot busy and the wait queue full, one more
// generation request is refused at once with 503 and Retry-After, the refusal
// is counted, and the server serves again as soon as the load is gone.
func TestQueueFull(t *testing.T) {
	entered := make(chan struct{}, 64)
	release := make(chan struct{})
	// The caller-supplied runner holds its request until released, which fills
	// the admission queue deterministically.
	runner := func(ctx context.Context, b Backend, req AgentRequest) (AgentResponse, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return AgentResponse{Answer: "done", Finished: true}, nil
		case <-ctx.Done():
			return AgentResponse{}, ctx.Err()
		}
	}
	const queue = 2
	f := newFixture(t, func(c *Config) { c.AgentRunner = runner; c.MaxQueue = queue })
	capacity := f.engine.ContextOptions().NSeqMax + queue
	var wg sync.WaitGroup
	errs := make(chan error, capacity)
	for range capacity {
		wg.Go(func() {
			resp, err := http.Post(f.url+"/v1/agent/run", "application/json", strings.NewReader(`{"question":"q?"}`))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				errs <- fmt.Errorf("held request: status %d: %s", resp.StatusCode, b)
			}
		})
	}
	for i := range capacity {
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d requests admitted", i, capacity)
		}
	}
	c := f.client("")
	_, err := c.CreateCompletion(context.Background(), openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 2})
	if status, code := apiError(t, err); status != http.StatusServiceUnavailable || code != "server_busy" {
		t.Fatalf("status %d code %q (%v), want 503 server_busy", status, code, err)
	}
	resp, err := http.Post(f.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("chat: status %d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Endpoints that do not generate stay available under load.
	if h := f.health(t); h.Status != "ok" || h.InFlight < int64(capacity) {
		t.Fatalf("health under load: %+v", h)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := c.CreateCompletion(context.Background(), openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 2}); err != nil {
		t.Fatalf("after the load: %v", err)
	}
	mresp, err := http.Get(f.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(body), "fireact_requests_rejected_total 2\n") {
		t.Errorf("metrics do not count the 2 refusals:\n%s", body)
	}
}

// rawExchange writes raw bytes to the server and returns what it answers
// before closing the connection (bounded by limit).
func rawExchange(t *testing.T, url, send string, limit time.Duration) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, send); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(limit))
	got, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept a stalled connection open for %s; read %q", limit, got)
	}
	return string(got)
}

// TestSlowClients: a client that trickles its headers or its body (slow-loris)
// is cut off by the server's own limits instead of holding a connection and a
// handler forever.
func TestSlowClients(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.HeaderTimeout = 200 * time.Millisecond
		c.BodyTimeout = 200 * time.Millisecond
	})
	t.Run("headers", func(t *testing.T) {
		// Half a request line, then nothing: the connection is closed.
		got := rawExchange(t, f.url, "POST /v1/compl", 20*time.Second)
		if strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("answered a request that never arrived: %q", got)
		}
	})
	t.Run("body", func(t *testing.T) {
		got := rawExchange(t, f.url, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: 200\r\n\r\n{\"model\":", 20*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 408") || !strings.Contains(got, "body_timeout") {
			t.Fatalf("answer %q, want 408 body_timeout", got)
		}
	})
	// The limits leave a well-behaved client alone.
	if _, err := f.client("").CreateCompletion(context.Background(), openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 3}); err != nil {
		t.Fatal(err)
	}
}

// TestDisconnectFreesSlot: a client that goes away mid-stream stops its
// generation at once (its slot is released and no further tokens are
// generated for it), and the next requests are served normally.
func TestDisconnectFreesSlot(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxTokens = 4000 })
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"tiny","prompt":"Thought:","max_tokens":4000,"ignore_eos":true,"stream":true}`
	fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("before the first event: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	conn.Close()
	waitFor(t, 30*time.Second, "the abandoned request ends", func() bool { return f.health(t).InFlight <= 1 })
	gen := f.engine.Stats().GeneratedTokens
	if gen >= 4000 {
		t.Fatalf("the engine generated all %d tokens for a client that left", gen)
	}
	// Nothing keeps generating for it afterwards.
	c := f.client("")
	if _, err := c.CreateCompletion(context.Background(), openai.CompletionRequest{Model: "tiny", Prompt: "Thought:", MaxTokens: 2}); err != nil {
		t.Fatal(err)
	}
	if after := f.engine.Stats().GeneratedTokens; after > gen+2 {
		t.Fatalf("generated %d tokens after the disconnect, want at most the 2 asked for", after-gen)
	}
}

// rssBytes reads the process's resident set size from /proc (0 where there is none).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(b), &size, &rss)
	return rss * int64(os.Getpagesize())
}

// TestSoak: 64 concurrent clients, each sending a fixed number of requests
// (streamed or not, over the base and both adapters), a seeded quarter of
// them abandoned after their first chunk. Every completed answer must equal
// the one-at-a-time answer, no request may fail, and a second round must not
// grow memory: the counts are fixed, so nothing depends on timing.
func TestSoak(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxQueue = 64 })
	c := f.client("")
	models := []string{"tiny", "tiny+a", "tiny+b"}
	const clients, perClient, prompts = 64, 3, 8
	req := func(i int) openai.CompletionRequest {
		return openai.CompletionRequest{Model: models[i%len(models)], MaxTokens: 12,
			Prompt: fmt.Sprintf("Question %d: which river runs through the city? Thought:", i%prompts)}
	}
	want := map[int]string{}
	for i := range len(models) * prompts {
		resp, err := c.CreateCompletion(context.Background(), req(i))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = resp.Choices[0].Text
	}
	round := func(seed uint64) (latencies []time.Duration, completed, abandoned, failed int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for cl := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(cl)))
				for k := range perClient {
					i := rng.IntN(len(models) * prompts)
					abandon := rng.IntN(4) == 0
					r := req(i)
					r.Stream = k%2 == 0 || abandon
					start := time.Now()
					text, err := completion(c, r, abandon)
					mu.Lock()
					switch {
					case abandon && err == nil:
						abandoned++
					case err != nil:
						failed++
						t.Errorf("client %d request %d: %v", cl, k, err)
					case text != want[i]:
						failed++
						t.Errorf("client %d request %d (%s): %q, want %q", cl, k, r.Model, text, want[i])
					default:
						completed++
						latencies = append(latencies, time.Since(start))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return
	}
	lat, done, gone, failed := round(1)
	rss1 := rssBytes()
	lat2, done2, gone2, failed2 := round(2)
	rss2 := rssBytes()
	lat = append(lat, lat2...)
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("soak: %d clients × %d requests × 2 rounds: %d completed, %d abandoned, %d failed; latency p50 %s p99 %s; RSS %d → %d MiB",
		clients, perClient, done+done2, gone+gone2, failed+failed2, p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), rss1>>20, rss2>>20)
	if done+done2 == 0 || gone+gone2 == 0 {
		t.Fatalf("the soak did not exercise both paths: %d completed, %d abandoned", done+done2, gone+gone2)
	}
	if rss1 > 0 && rss2-rss1 > 64<<20 {
		t.Errorf("RSS grew by %d MiB over a second identical round", (rss2-rss1)>>20)
	}
	waitFor(t, 30*time.Second, "every request ends", func() bool { return f.health(t).InFlight <= 1 })
}

// completion sends one request; abandon closes a stream after its first chunk
// as a client that goes away does.
func completion(c *openai.Client, r openai.CompletionRequest, abandon bool) (string, error) {
	ctx := context.Background()
	if !r.Stream {
		resp, err := c.CreateCompletion(ctx, r)
		if err != nil {
			return "", err
		}
		return resp.Choices[0].Text, nil
	}
	stream, err := c.CreateCompletionStream(ctx, r)
	if err != nil {
		return "", err
	}
	defer stream.Close()
	var sb strings.Builder
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return sb.String(), nil
		}
		if err != nil {
			return "", err
		}
		if abandon {
			return "", nil
		}
		for _, ch := range chunk.Choices {
			sb.WriteString(ch.Text)
		}
	}
}
