package llama

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// stories260K is a real pretrained tiny llama (TinyStories, SPM vocab of 512).
const storiesPath = "../../shared/data/models/stories260K.gguf"

// storiesGreedy is the greedy continuation recorded in ../shared/data/README.md.
const storiesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily"

func loadStories(t testing.TB) *Model {
	t.Helper()
	if _, err := os.Stat(storiesPath); err != nil {
		t.Fatalf("stories260K model missing (../shared must sit beside the checkout): %v", err)
	}
	m, err := LoadModel(storiesPath, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestStoriesInfo(t *testing.T) {
	m := loadStories(t)
	info := m.Info()
	if info.Arch != "llama" || info.NVocab != 512 || info.NLayer != 5 || info.NEmbd != 64 || info.NHead != 8 || info.NHeadKV != 4 {
		t.Fatalf("unexpected metadata: %+v", info)
	}
	if info.BOS != 1 || info.EOS != 2 || info.VocabType != "spm" {
		t.Fatalf("unexpected special tokens: %+v", info)
	}
	if v, ok := m.Meta("general.architecture"); !ok || v != "llama" {
		t.Fatalf("Meta(general.architecture) = %q, %v", v, ok)
	}
}

func TestStoriesTokenizeRoundTrip(t *testing.T) {
	m := loadStories(t)
	for _, text := range []string{
		"Once upon a time, there was a little girl named Lily.",
		"She said: \"Hello!\"\nThen   she ran away... 42 times.",
		"ünïcödé ☃ text falls back to bytes",
	} {
		toks, err := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
		if err != nil {
			t.Fatal(err)
		}
		if toks[0] != m.Info().BOS {
			t.Fatalf("first token %d, want BOS", toks[0])
		}
		plain, err := m.Tokenize(text, TokenizeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(plain, toks[1:]) {
			t.Fatalf("tokens without BOS %v differ from %v", plain, toks[1:])
		}
		got, err := m.Detokenize(plain, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if got != text {
			t.Fatalf("round trip:\n got %q\nwant %q", got, text)
		}
		var pieces []byte
		for _, tk := range toks[1:] {
			pieces = append(pieces, m.TokenPiece(tk, false)...)
		}
		if strings.TrimPrefix(string(pieces), " ") != text {
			t.Fatalf("pieces joined = %q, want %q", pieces, text)
		}
	}
}

func greedy(t testing.TB, e *Engine, prompt string, n int) *Result {
	t.Helper()
	r, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: false})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStoriesGreedyContinuation(t *testing.T) {
	m := loadStories(t)
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompt := "Once upon a time"
	want := strings.TrimPrefix(storiesGreedy, prompt)
	var streamed strings.Builder
	r, err := e.Generate(context.Background(), Request{
		Prompt: prompt, MaxTokens: 200, Stop: []string{"\nLily"},
		OnText: func(s string) error { streamed.WriteString(s); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	wantText := strings.TrimSuffix(want, "\nLily")
	if r.Text != wantText {
		t.Fatalf("greedy continuation:\n got %q\nwant %q", r.Text, wantText)
	}
	if r.FinishReason != FinishStop || r.StopString != "\nLily" {
		t.Fatalf("finish = %q stop %q", r.FinishReason, r.StopString)
	}
	if streamed.String() != r.Text {
		t.Fatalf("streamed text %q differs from result %q", streamed.String(), r.Text)
	}
}

func TestStoriesPerplexity(t *testing.T) {
	m := loadStories(t)
	c, err := m.NewContext(ContextOptions{NCtx: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	text := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
	r, err := c.Perplexity(text)
	if err != nil {
		t.Fatal(err)
	}
	if r.Perplexity >= 10 {
		t.Fatalf("perplexity of a TinyStories paragraph = %.2f, want < 10", r.Perplexity)
	}
	words := strings.Fields(text)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	rs, err := c.Perplexity(strings.Join(words, " "))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Perplexity < 3*r.Perplexity {
		t.Fatalf("shuffled perplexity %.2f is not much higher than %.2f", rs.Perplexity, r.Perplexity)
	}
	t.Logf("perplexity %.3f, shuffled %.3f", r.Perplexity, rs.Perplexity)
}

// storyPrompts are eight story openings for the engine tests.
var storyPrompts = []string{
	"Once upon a time", "One day, a little boy", "The cat sat on", "Lily and Tom went",
	"There was a big dog", "Mom said", "The sun was hot and", "A bird flew",
}

// generateEach runs reqs one after another on a fresh one-sequence engine: the
// reference a batched engine must reproduce token for token.
func generateEach(t *testing.T, m *Model, reqs []Request) []*Result {
	t.Helper()
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out := make([]*Result, len(reqs))
	for i, r := range reqs {
		if out[i], err = e.Generate(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// generateAll submits reqs to e from one goroutine each and waits for all. With
// inOrder, request i goes in only after request i-1 produced its first token, so
// that on a fresh engine request i holds slot i. Failures are reported with
// t.Error; callers check t.Failed before reading the results.
func generateAll(t *testing.T, e *Engine, reqs []Request, inOrder bool) []*Result {
	t.Helper()
	out := make([]*Result, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		started := make(chan struct{})
		var once sync.Once
		if inOrder {
			r.OnText = func(string) error { once.Do(func() { close(started) }); return nil }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer once.Do(func() { close(started) })
			res, err := e.Generate(context.Background(), r)
			if err != nil {
				t.Error(err)
				return
			}
			out[i] = res
		}()
		if inOrder {
			<-started
		}
	}
	wg.Wait()
	return out
}

func TestEngineBatchedEqualsSequential(t *testing.T) {
	m := loadStories(t)
	reqs := make([]Request, len(storyPrompts))
	for i, p := range storyPrompts {
		reqs[i] = Request{Prompt: p, MaxTokens: 48}
	}
	want := generateEach(t, m, reqs)
	par, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 2048, NSeqMax: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer par.Close()
	got := generateAll(t, par, reqs, false)
	if t.Failed() {
		return
	}
	for i := range reqs {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) {
			t.Errorf("prompt %q: batched tokens differ:\n got %v\nwant %v", storyPrompts[i], got[i].Tokens, want[i].Tokens)
		}
	}
	if st := par.Stats(); st.Decodes >= int64(len(reqs))*48 {
		t.Errorf("%d decodes for %d sequences x 48 tokens: not batched", st.Decodes, len(reqs))
	}
}

func TestEngineSharedPrefix(t *testing.T) {
	m := loadStories(t)
	prefix := strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside. ", 3)
	suffixes := []string{"One day", "The dog", "Her mom", "Tom said", "The ball", "It was", "They ran", "Lily saw"}

	run := func(noReuse, unified bool) ([]*Result, EngineStats) {
		e, err := NewEngine(m, EngineOptions{NoPrefixReuse: noReuse, Context: ContextOptions{NCtx: 4096, NSeqMax: 8, KVUnified: unified}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		res := make([]*Result, len(suffixes))
		var wg sync.WaitGroup
		for i, s := range suffixes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = greedy(t, e, prefix+s, 24)
			}()
		}
		wg.Wait()
		return res, e.Stats()
	}
	plain, plainStats := run(true, false)
	shared, sharedStats := run(false, false)
	unified, unifiedStats := run(false, true)
	for i := range suffixes {
		if !slices.Equal(plain[i].Tokens, shared[i].Tokens) || !slices.Equal(plain[i].Tokens, unified[i].Tokens) {
			t.Errorf("suffix %q: output with prefix reuse differs", suffixes[i])
		}
	}

	if plainStats.PromptTokens != sharedStats.PromptTokens {
		t.Fatalf("prompt token totals differ: %d vs %d", plainStats.PromptTokens, sharedStats.PromptTokens)
	}
	if plainStats.PromptDecoded != plainStats.PromptTokens {
		t.Fatalf("without reuse decoded %d of %d prompt tokens", plainStats.PromptDecoded, plainStats.PromptTokens)
	}
	prefixToks, _ := m.Tokenize(prefix, TokenizeOptions{AddSpecial: true})
	// The prefix is decoded once; the other 7 sequences share its cells.
	maxDecoded := plainStats.PromptTokens - int64(len(suffixes)-1)*int64(len(prefixToks)-2)
	// Which request leads and which follow depends on goroutine scheduling, so
	// the exact count can differ by a token or two between runs; the bound cannot.
	for name, st := range map[string]EngineStats{"separate streams": sharedStats, "unified cache": unifiedStats} {
		if st.PromptDecoded > maxDecoded {
			t.Fatalf("%s: with reuse decoded %d prompt tokens, want <= %d (plain %d)", name, st.PromptDecoded, maxDecoded, plainStats.PromptDecoded)
		}
	}
	if sharedStats.PromptReused+sharedStats.PromptDecoded != sharedStats.PromptTokens {
		t.Fatalf("reused %d + decoded %d != %d", sharedStats.PromptReused, sharedStats.PromptDecoded, sharedStats.PromptTokens)
	}
	t.Logf("prompt tokens decoded: %d without reuse, %d with", plainStats.PromptDecoded, sharedStats.PromptDecoded)
}

func TestEngineCancel(t *testing.T) {
	m := loadStories(t)
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = e.Generate(ctx, Request{Prompt: "Once upon a time", IgnoreEOS: true, MaxTokens: 400, OnText: func(string) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The engine still serves requests after a cancellation.
	if r := greedy(t, e, "Once upon a time", 8); len(r.Tokens) == 0 {
		t.Fatal("no tokens after a cancelled request")
	}
	e.Close()
	if _, err := e.Generate(context.Background(), Request{Prompt: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Generate after Close: %v", err)
	}
}

func TestBadGrammar(t *testing.T) {
	m := loadStories(t)
	if err := m.ValidateGrammar(`root ::= "a" undefined-rule`, ""); err == nil {
		t.Fatal("a broken grammar validated")
	}
	if err := m.ValidateGrammar(`root ::= "yes" | "no"`, ""); err != nil {
		t.Fatal(err)
	}
}

// TestEngineBridgesGaps admits 8 requests into slots 0..7 in order; the odd slots
// finish after 4 tokens, leaving gaps between the sequences still generating. The
// engine must bridge those gaps (one decode pass instead of one per run of
// consecutive sequences) without changing any sequence's tokens.
func TestEngineBridgesGaps(t *testing.T) {
	m := loadStories(t)
	reqs := make([]Request, len(storyPrompts))
	for i, p := range storyPrompts {
		n := 40
		if i%2 == 1 {
			n = 4
		}
		reqs[i] = Request{Prompt: p, MaxTokens: n, IgnoreEOS: true}
	}
	want := generateEach(t, m, reqs)
	par, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 4096, NSeqMax: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer par.Close()
	got := generateAll(t, par, reqs, true)
	if t.Failed() {
		return
	}
	for i := range reqs {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) {
			t.Errorf("prompt %q: tokens differ with gaps bridged:\n got %v\nwant %v", storyPrompts[i], got[i].Tokens, want[i].Tokens)
		}
	}
	if st := par.Stats(); st.Bridged == 0 {
		t.Errorf("no gap was bridged: %+v", st)
	}
}
