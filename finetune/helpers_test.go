package finetune

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// stories260K is karpathy's tiny TinyStories llama: a real SPM tokenizer.
const stories260K = "../../shared/data/models/stories260K.gguf"

// hotpotAlpaca is FireAct's released HotpotQA ReAct set.
const hotpotAlpaca = "../../shared/data/fireact/finetune/alpaca_format/hotpotqa.json"

// genModel writes a small llama made in code whose vocabulary has the ReAct words.
func genModel(t testing.TB, dir string, seed uint64, chatTemplate string) string {
	t.Helper()
	path := filepath.Join(dir, "gen.gguf")
	cfg := modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 512, Seed: seed,
		ChatTemplate: chatTemplate,
	}
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadModel(t testing.TB, path string, opts llama.ModelOptions) *llama.Model {
	t.Helper()
	m, err := llama.LoadModel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(dir, "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sampleTrajectory is a two-step ReAct trajectory in FireAct's text.
func sampleTrajectory() trajectory.Trajectory {
	t := trajectory.Parse("Thought: I need to search the city.\nAction: search[the city]\nObservation: The city is Paris.\nThought: So the answer is Paris.\nAction: finish[Paris]\nObservation: Episode finished, reward = True\n")
	t.Question = "What is the capital city of the country?"
	t.Method, t.Task = trajectory.MethodReAct, "hotpotqa"
	return t
}

// scoredText returns the text of the scored tokens (EOS excluded) and whether the
// last token is a scored EOS.
func scoredText(m *llama.Model, ex Example) (string, bool) {
	var b []byte
	eos := m.Info().EOS
	for i, tok := range ex.Tokens {
		if ex.Target[i] && tok != eos {
			b = append(b, m.TokenPiece(tok, true)...)
		}
	}
	n := len(ex.Tokens)
	return string(b), n > 0 && ex.Tokens[n-1] == eos && ex.Target[n-1]
}

// insertEpisodes records trajectories as a generate run's episodes.
func insertEpisodes(t testing.TB, s *store.Store, name string, ts []trajectory.Trajectory) int64 {
	t.Helper()
	ctx := context.Background()
	run := store.Run{Name: name, Kind: store.KindGenerate, Config: "{}", Status: store.StatusDone}
	if _, err := s.CreateRun(ctx, &run); err != nil {
		t.Fatal(err)
	}
	qs := make([]store.Question, len(ts))
	for i, tr := range ts {
		qs[i] = store.Question{Task: tr.Task, Split: "train-" + name, Index: i, Text: tr.Question}
	}
	if err := s.UpsertQuestions(ctx, qs); err != nil {
		t.Fatal(err)
	}
	for i, tr := range ts {
		ep := store.Episode{RunID: run.ID, QuestionID: qs[i].ID, Status: store.EpisodeDone}
		store.EpisodeFromTrajectory(&ep, tr)
		if err := s.InsertEpisode(ctx, &ep, store.StepsFromTrajectory(tr)); err != nil {
			t.Fatal(err)
		}
	}
	return run.ID
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

type llamaToken = llama.Token
