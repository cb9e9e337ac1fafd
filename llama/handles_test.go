package llama

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/llama/modelgen"
)

// rssBytes is this process's resident set size.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestHandlesWithoutClose drops models, contexts, adapters, samplers and
// trainers without Close, all unreachable together, under GC pressure: their
// cleanups must free everything (the resident size stays flat over many
// rounds; without a trainer cleanup each round leaks its optimizer state) and
// in a safe order (a context or trainer freed after its model would crash).
func TestHandlesWithoutClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	cfg := modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 256, NLayer: 2, NHead: 4, NFF: 1024, NCtx: 256, Seed: 1}
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	lora := filepath.Join(dir, "a.gguf")
	{
		m := loadPath(t, path, ModelOptions{})
		if err := modelgen.WriteLoRA(lora, m.File(), modelgen.LoRAConfig{Targets: modelgen.AllTargets(m.File(), "attn_q"), Rank: 4, Seed: 1}); err != nil {
			t.Fatal(err)
		}
	}
	round := func() []any {
		m, err := LoadModel(path, ModelOptions{NoMmap: false})
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.NewContext(ContextOptions{NCtx: 256, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		a, err := m.LoadAdapter(lora)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := m.newSampler(SamplingOptions{Temperature: 0.7, Grammar: `root ::= "a"`}); err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(m, TrainerOptions{Rank: 8, Targets: TargetsAll, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Step(agentBatch(t, m, trainText), 1e-3); err != nil {
			t.Fatal(err)
		}
		return []any{m, c, a, tr}
	}
	settle := func() {
		for range 4 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
	}
	for range 3 {
		round()
	}
	settle()
	// What one round holds while alive, measured the same way.
	base := rssBytes(t)
	var kept [][]any
	for range 4 {
		kept = append(kept, round())
	}
	settle()
	perRound := (rssBytes(t) - base) / 4
	runtime.KeepAlive(kept)
	kept = nil
	settle()
	before := rssBytes(t)
	const rounds = 24
	for range rounds {
		round()
		runtime.GC()
	}
	settle()
	grown := rssBytes(t) - before
	t.Logf("one live round holds %.1f MiB; %d dropped rounds grew the resident size by %.1f MiB",
		float64(perRound)/(1<<20), rounds, float64(grown)/(1<<20))
	// glibc keeps some freed memory in its per-thread arenas, so the bound is a
	// third of what the rounds would hold if nothing were freed.
	if grown > rounds*perRound/3 {
		t.Fatalf("%d rounds of unclosed handles grew the resident size by %.1f MiB (a live round holds %.1f MiB): something is not freed",
			rounds, float64(grown)/(1<<20), float64(perRound)/(1<<20))
	}
}
