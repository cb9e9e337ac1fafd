package llama

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/modelgen"
)

// tinyModel writes a deterministic tiny llama made in code and loads it.
func tinyModel(t testing.TB, dir string, seed uint64) (string, *Model) {
	t.Helper()
	path := filepath.Join(dir, "tiny.gguf")
	cfg := modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 512, Seed: seed,
	}
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(path, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return path, m
}

func writeAdapter(t testing.TB, m *Model, path string, zeroB bool, seed uint64) {
	t.Helper()
	cfg := modelgen.LoRAConfig{Targets: modelgen.AllTargets(m.File(), "attn_q", "attn_v", "ffn_down"), Rank: 4, Alpha: 8, Seed: seed, ZeroB: zeroB, Std: 0.5}
	if err := modelgen.WriteLoRA(path, m.File(), cfg); err != nil {
		t.Fatal(err)
	}
}

// lastLogits decodes tokens as sequence 0 from an empty cache and returns the logits
// of the last position.
func lastLogits(t testing.TB, c *Context, toks []Token) []float32 {
	t.Helper()
	c.ClearKV()
	var b Batch
	for i, tk := range toks {
		b.Add(tk, i, 0, i == len(toks)-1)
	}
	if err := c.Decode(&b); err != nil {
		t.Fatal(err)
	}
	l, err := c.Logits(len(toks) - 1)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestGeneratedModelRuns(t *testing.T) {
	_, m := tinyModel(t, t.TempDir(), 7)
	if m.Info().Arch != "llama" || m.Info().NLayer != 2 {
		t.Fatalf("info %+v", m.Info())
	}
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := greedy(t, e, "Thought: I need to search", 16)
	if len(r.Tokens) == 0 {
		t.Fatal("no tokens generated")
	}
	// Same seed, same model, same output.
	_, m2 := tinyModel(t, t.TempDir(), 7)
	e2, err := NewEngine(m2, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if r2 := greedy(t, e2, "Thought: I need to search", 16); !slices.Equal(r.Tokens, r2.Tokens) {
		t.Fatalf("same seed gave different output: %v vs %v", r.Tokens, r2.Tokens)
	}
}

func TestAdapterZeroNonZeroRemove(t *testing.T) {
	dir := t.TempDir()
	_, m := tinyModel(t, dir, 11)
	zeroPath, livePath := filepath.Join(dir, "zero.gguf"), filepath.Join(dir, "live.gguf")
	writeAdapter(t, m, zeroPath, true, 1)
	writeAdapter(t, m, livePath, false, 2)
	zero, err := m.LoadAdapter(zeroPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	live, err := m.LoadAdapter(livePath)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if live.Rank() != 4 || live.Alpha() != 8 || len(live.Targets()) != 6 {
		t.Fatalf("adapter info rank %d alpha %g targets %v", live.Rank(), live.Alpha(), live.Targets())
	}

	c, err := m.NewContext(ContextOptions{NCtx: 256, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	toks, _ := m.Tokenize("Question: who directed the film? Thought: search", TokenizeOptions{AddSpecial: true})
	base := lastLogits(t, c, toks)

	if err := c.SetAdapter(zero, 1); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(base, lastLogits(t, c, toks)); d != 0 {
		t.Fatalf("B=0 adapter changed logits by %g", d)
	}
	// Swapping adapters on a context that has already decoded the same batch shape:
	// llama.cpp would reuse the stale graph if graph reuse were on.
	if err := c.ClearAdapters(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAdapter(live, 1); err != nil {
		t.Fatal(err)
	}
	withLive := lastLogits(t, c, toks)
	if d := maxAbsDiff(base, withLive); d < 1e-3 {
		t.Fatalf("non-zero adapter changed logits by only %g", d)
	}
	// Scale 0 is the base model again; scale 2 differs from scale 1.
	if err := c.SetAdapter(live, 2); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(withLive, lastLogits(t, c, toks)); d < 1e-3 {
		t.Fatalf("changing the scale changed logits by only %g", d)
	}
	if err := c.RemoveAdapter(live); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(base, lastLogits(t, c, toks)); d != 0 {
		t.Fatalf("removing the adapter left a difference of %g", d)
	}
	if err := live.Close(); err != nil {
		t.Fatalf("closing a detached adapter: %v", err)
	}
}

// TestGraphReuseStaleness documents why graph reuse is off by default: with it on,
// llama.cpp ignores an adapter change between two decodes of the same shape.
func TestGraphReuseStaleness(t *testing.T) {
	dir := t.TempDir()
	_, m := tinyModel(t, dir, 13)
	p := filepath.Join(dir, "live.gguf")
	writeAdapter(t, m, p, false, 3)
	a, err := m.LoadAdapter(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := m.NewContext(ContextOptions{NCtx: 256, GraphReuse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	toks, _ := m.Tokenize("Thought: search", TokenizeOptions{AddSpecial: true})
	lastLogits(t, c, toks)
	if err := c.SetAdapter(a, 1); err == nil {
		t.Fatal("adapter change after decode accepted on a GraphReuse context")
	}
}

func TestAdapterValidation(t *testing.T) {
	dir := t.TempDir()
	_, m := tinyModel(t, dir, 17)
	other := modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 32, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 64, NCtx: 256, Seed: 1}
	op := filepath.Join(dir, "other.gguf")
	if err := modelgen.WriteLlama(op, other); err != nil {
		t.Fatal(err)
	}
	of, err := gguf.Read(op)
	if err != nil {
		t.Fatal(err)
	}
	ap := filepath.Join(dir, "mismatch.gguf")
	if err := modelgen.WriteLoRA(ap, of, modelgen.LoRAConfig{Targets: modelgen.AllTargets(of, "attn_q"), Rank: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadAdapter(ap); err == nil {
		t.Fatal("an adapter for another model shape loaded")
	}
	if _, err := m.LoadAdapter(op); err == nil {
		t.Fatal("a model file loaded as an adapter")
	}
}

// TestEnginePerRequestAdapters serves requests with different adapter sets at once;
// each must equal the same request served alone.
func TestEnginePerRequestAdapters(t *testing.T) {
	dir := t.TempDir()
	_, m := tinyModel(t, dir, 19)
	var ads []*Adapter
	for i := 0; i < 2; i++ {
		p := filepath.Join(dir, "a"+string(rune('0'+i))+".gguf")
		writeAdapter(t, m, p, false, uint64(10+i))
		a, err := m.LoadAdapter(p)
		if err != nil {
			t.Fatal(err)
		}
		ads = append(ads, a)
	}
	sets := [][]AdapterScale{nil, {{ads[0], 1}}, {{ads[1], 1}}, {{ads[0], 0.5}, {ads[1], 0.5}}}
	prompt := "Question: where was the director born? Thought:"
	alone := make([][]Token, len(sets))
	for i, s := range sets {
		e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 1}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 12, Adapters: s, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = r.Tokens
		e.Close()
	}
	if slices.Equal(alone[0], alone[1]) && slices.Equal(alone[1], alone[2]) {
		t.Fatal("adapters did not change the output at all")
	}
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 2048, NSeqMax: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var wg sync.WaitGroup
	got := make([][]Token, 2*len(sets))
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 12, Adapters: sets[i%len(sets)], IgnoreEOS: true})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = r.Tokens
		}()
	}
	wg.Wait()
	for i := range got {
		if !slices.Equal(got[i], alone[i%len(sets)]) {
			t.Errorf("request %d (adapter set %d): %v, alone %v", i, i%len(sets), got[i], alone[i%len(sets)])
		}
	}
	e.Close()
	for _, a := range ads {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}
}
