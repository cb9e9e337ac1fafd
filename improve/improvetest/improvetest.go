// Package improvetest builds the fixture that improve's tests and the CLI's
// improve test share: the demo's miniature FireAct world in a real store, with
// the scripted oracle teacher's trajectories and a tiny student made in code.
// It is a test helper (it takes a testing.TB) and is imported only by tests.
package improvetest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/agent/world"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
)

// TeacherRun is the name of the teacher's ReAct run on the train split.
const TeacherRun = "teacher-react"

// FullSteps are the full-training steps of the student's base on the
// teacher's trajectories: a LoRA on a random model learns little in a few
// steps, and a student that answers some train questions gives rounds
// samples to keep.
const FullSteps = 120

// World is the fixture: the world's encyclopedia indexed as local search
// corpus Corpus in the store at DB, the oracle teacher's ReAct episodes on
// every train question (run TeacherRun), the student's base (Base: a llama
// made in code whose vocabulary holds the world's words, fully trained on
// those episodes) and an SFT adapter on it (SFT, rank 8, alpha 16, all
// projections).
type World struct {
	Store      *store.Store
	Dir, DB    string
	Train, Dev tasks.Task
	Corpus     string
	Base, SFT  string
}

// NewWorld builds the fixture for the world of wc under a temporary directory.
func NewWorld(t testing.TB, wc world.Config) *World {
	t.Helper()
	ctx := context.Background()
	d := &World{Dir: t.TempDir(), Corpus: fmt.Sprintf("world-%d", wc.Seed)}
	d.DB = filepath.Join(d.Dir, "fireact.db")
	w := world.New(wc)
	var err error
	if d.Store, err = store.Open(ctx, d.DB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Store.Close() })
	docs := w.Docs()
	for i := range docs {
		docs[i].Corpus = d.Corpus
	}
	if err := d.Store.AddCorpusDocs(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if d.Train, err = w.Task("train"); err != nil {
		t.Fatal(err)
	}
	if d.Dev, err = w.Task("dev"); err != nil {
		t.Fatal(err)
	}
	search, err := agent.NewSearch(ctx, d.Store, d.Search())
	if err != nil {
		t.Fatal(err)
	}
	all := make([]int, d.Train.Len())
	for i := range all {
		all[i] = i
	}
	teacher := &agent.Agent{LLM: world.NewOracle(w), Search: search, Method: agent.ReAct(), Prompt: agent.Prompt{Format: agent.FormatAlpaca}}
	if _, err := agent.RunTask(ctx, agent.RunSpec{Store: d.Store, Task: d.Train, Agent: teacher, Indices: all,
		Concurrency: 4, Run: store.Run{Name: TeacherRun, Kind: store.KindGenerate, Model: "world-oracle", Method: "react",
			Task: world.TaskName, Split: "train", Config: "{}"}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var vocab []string
	for _, x := range append(modelgen.BasicWords(), w.Vocabulary()...) {
		if !seen[x] {
			seen[x] = true
			vocab = append(vocab, x)
		}
	}
	made := filepath.Join(d.Dir, "student-init.gguf")
	if err := modelgen.WriteLlama(made, modelgen.LlamaConfig{Name: "improve-test-student", Vocab: modelgen.SPMVocab(vocab),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 4, NFF: 192, NCtx: 2048, Seed: 1, InitStd: 0.02}); err != nil {
		t.Fatal(err)
	}
	one := 1.0
	d.Base = filepath.Join(d.Dir, "student.gguf")
	tc := Training()
	tc.Base, tc.Out, tc.Runs, tc.MinReward, tc.Full, tc.MaxSteps, tc.LR, tc.SaveEvery = made, d.Base, []string{TeacherRun}, &one, true, FullSteps, 3e-3, -1
	if _, err := finetune.Run(ctx, d.Store, tc); err != nil {
		t.Fatal(err)
	}
	d.SFT = filepath.Join(d.Dir, "sft.lora.gguf")
	tc = Training()
	tc.Base, tc.Out, tc.Runs, tc.MinReward, tc.MaxSteps, tc.Rank, tc.Alpha = d.Base, d.SFT, []string{TeacherRun}, &one, 8, 8, 16
	if _, err := finetune.Run(ctx, d.Store, tc); err != nil {
		t.Fatal(err)
	}
	return d
}

// Search is the fixture's search tool: local search over the world's corpus.
func (d *World) Search() agent.SearchOptions {
	return agent.SearchOptions{Backend: agent.SearchLocal, Corpus: d.Corpus}
}

// Training is a tiny training job (8 steps of 256 tokens, one thread).
func Training() finetune.Config {
	return finetune.Config{MaxSteps: 8, LR: 3e-3, MaxTokens: 256, Cutoff: 256, Val: -1, EvalEvery: -1, SaveEvery: 4,
		Targets: llama.TargetsAll, Threads: 1, Seed: 1}
}
