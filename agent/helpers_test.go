package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fireact/fireact/agent/metrics"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
)

var (
	dirOnce sync.Once
	dir     string
	dirErr  error

	tinyOnce sync.Once
	tinyPath string
	tinyErr  error
)

// modelDir is a temporary directory for the models a test binary writes,
// removed by TestMain.
func modelDir(tb testing.TB) string {
	tb.Helper()
	dirOnce.Do(func() { dir, dirErr = os.MkdirTemp("", "fireact-agent-test") })
	if dirErr != nil {
		tb.Fatalf("model directory: %v", dirErr)
	}
	return dir
}

// tinyModel writes the tiny random GGUF model once per test binary.
func tinyModel(tb testing.TB) string {
	tb.Helper()
	d := modelDir(tb)
	tinyOnce.Do(func() {
		tinyPath = filepath.Join(d, "tiny.gguf")
		tinyErr = modelgen.WriteLlama(tinyPath, modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
			NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 2048, Seed: 1})
	})
	if tinyErr != nil {
		tb.Fatalf("tiny model: %v", tinyErr)
	}
	return tinyPath
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// newEngine loads the tiny model into an engine closed at the end of the test.
func newEngine(tb testing.TB, seqs int, noReuse bool) *llama.Engine {
	tb.Helper()
	return newEngineFor(tb, tinyModel(tb), seqs, noReuse)
}

// newEngineFor loads the model at path into an engine closed at the end of the test.
func newEngineFor(tb testing.TB, path string, seqs int, noReuse bool) *llama.Engine {
	tb.Helper()
	m, err := llama.LoadModel(path, llama.ModelOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := llama.NewEngine(m, llama.EngineOptions{NoPrefixReuse: noReuse,
		Context: llama.ContextOptions{NCtx: max(16384, 3072*seqs), NSeqMax: seqs, Threads: 1, FlashAttn: llama.FlashAttnOn}})
	if err != nil {
		m.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(); m.Close() })
	return e
}

// newStore opens a fresh database in the test's temporary directory.
func newStore(tb testing.TB) *store.Store {
	tb.Helper()
	s, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "fireact.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// testTask is a small in-memory task whose gold answers live in the corpus.
func testTask(n int) *tasks.Static {
	t := &tasks.Static{TaskName: "hotpotqa", SplitName: "test", Scorer: metrics.QA}
	for i := 0; i < n; i++ {
		t.Questions = append(t.Questions, tasks.Question{Index: i,
			Text: fmt.Sprintf("Which city is the home of the number %d museum?", i),
			Gold: fmt.Sprintf("city%d", i)})
	}
	return t
}

// fillCorpus indexes one document per test question.
func fillCorpus(tb testing.TB, s *store.Store, corpus string, n int) {
	tb.Helper()
	var docs []store.CorpusDoc
	for i := 0; i < n; i++ {
		docs = append(docs, store.CorpusDoc{Corpus: corpus, Title: fmt.Sprintf("Museum %d", i),
			Text: fmt.Sprintf("The number %d museum is in city%d. It opened long ago.\n\nMore text.", i, i)})
	}
	if err := s.AddCorpusDocs(context.Background(), docs); err != nil {
		tb.Fatal(err)
	}
}
