package llama

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/hf/hftest"
	"github.com/fireact/fireact/llama/modelgen"
)

// nodeLlamaVersion is the node-llama-cpp the Makefile's deps target installs.
const nodeLlamaVersion = "3.22.1"

// nodeLlama returns the node binary and the node_modules folder holding
// node-llama-cpp (FIREACT_NODE_MODULES, or the project's .deps/node that
// `make deps` fills), or skips the test saying what is missing.
func nodeLlama(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: install Node.js >= 20 with npm, then run make deps (installs node-llama-cpp " + nodeLlamaVersion + " into .deps/node)")
	}
	modules = os.Getenv("FIREACT_NODE_MODULES")
	if modules == "" {
		modules = filepath.Join("..", ".deps", "node", "node_modules")
	}
	pkg, err := os.ReadFile(filepath.Join(modules, "node-llama-cpp", "package.json"))
	if err != nil {
		t.Skipf("node-llama-cpp is not installed in %s (%v): run make deps, which installs it with npm", modules, err)
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(pkg, &meta); err != nil {
		t.Fatalf("%s/node-llama-cpp/package.json: %v", modules, err)
	}
	if meta.Version != nodeLlamaVersion {
		t.Skipf("%s holds node-llama-cpp %s, not %s: run make deps", modules, meta.Version, nodeLlamaVersion)
	}
	abs, err := filepath.Abs(modules)
	if err != nil {
		t.Fatal(err)
	}
	return node, abs
}

// nodeLoRA and nodeRequest are greedy.mjs's request (see the script).
type nodeLoRA struct {
	Path  string  `json:"path"`
	Scale float32 `json:"scale"`
}

type nodeRequest struct {
	Model   string     `json:"model"`
	LoRA    []nodeLoRA `json:"lora,omitempty"`
	Prompt  []Token    `json:"prompt"`
	N       int        `json:"n"`
	Ctx     int        `json:"ctx"`
	Threads int        `json:"threads"`
	Text    string     `json:"text"`
}

type nodeResult struct {
	Tokens    []Token `json:"tokens"`
	Tokenized []Token `json:"tokenized"`
}

// nodeGreedy runs testdata/nodellama/greedy.mjs: node-llama-cpp's greedy
// continuation of req.Prompt and its tokenization of req.Text.
func nodeGreedy(t *testing.T, node, modules string, req nodeRequest) nodeResult {
	t.Helper()
	arg, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "nodellama", "greedy.mjs"), string(arg))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node-llama-cpp on %s: %v\nstderr:\n%s", req.Model, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res nodeResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("greedy.mjs output %q: %v (stderr %s)", stdout.String(), err, stderr.String())
	}
	if len(res.Tokens) != req.N {
		t.Fatalf("node-llama-cpp generated %d tokens, want %d", len(res.Tokens), req.N)
	}
	return res
}

// ourGreedy is our engine's greedy continuation of prompt: n tokens, past
// end-of-generation as greedy.mjs does, one thread as there.
func ourGreedy(t *testing.T, m *Model, adapters []AdapterScale, prompt []Token, n, nctx int) []Token {
	t.Helper()
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: nctx, NSeqMax: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := e.Generate(context.Background(), Request{Tokens: prompt, MaxTokens: n, IgnoreEOS: true, Adapters: adapters})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tokens) != n {
		t.Fatalf("we generated %d tokens, want %d", len(r.Tokens), n)
	}
	return r.Tokens
}

// logitMargin is the gap between the best and second-best logit after
// prompt+prefix (with adapters): how close to a tie the first divergence was.
func logitMargin(t *testing.T, m *Model, adapters []AdapterScale, seq []Token) float32 {
	t.Helper()
	c, err := m.NewContext(ContextOptions{NCtx: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, a := range adapters {
		if err := c.SetAdapter(a.Adapter, a.Scale); err != nil {
			t.Fatal(err)
		}
	}
	lg := lastLogits(t, c, seq)
	best, second := float32(-1e30), float32(-1e30)
	for _, v := range lg {
		if v > best {
			best, second = v, best
		} else if v > second {
			second = v
		}
	}
	return best - second
}

// TestNodeLlamaConformance loads our models and adapters in node-llama-cpp, an
// independent llama.cpp build (its prebuilt CPU binary), and checks that it
// tokenizes the prompt as we do and continues it greedily with the same tokens:
// (a) stories260K and models made in code, F32 and Q8_0; (b) a model with a LoRA adapter our
// trainer wrote (with fireact's usage metadata), and the model `fireact merge`
// makes from the pair; (c) a PEFT adapter converted by `fireact convert`
// (llama, whose q/k rows the conversion permutes). Each adapter must change
// our continuation, or agreeing on it would prove nothing.
func TestNodeLlamaConformance(t *testing.T) {
	node, modules := nodeLlama(t)
	const n = 24
	const nctx = 256
	const text = "Question: who directed the film? Thought: I need to search"
	dir := t.TempDir()

	type tcase struct {
		name     string
		model    string
		adapters []nodeLoRA
	}
	var cases []tcase
	// ours must differ from the base's continuation for each adapter case.
	baseOf := map[string]string{}

	// A real model with a real SPM tokenizer (karpathy's TinyStories llama).
	if _, err := os.Stat(storiesPath); err != nil {
		t.Fatalf("stories260K model missing (../shared must sit beside the checkout): %v", err)
	}
	cases = append(cases, tcase{name: "stories260K", model: storiesPath})
	f32 := trainModel(t, dir, "f32", 64, 11)
	cases = append(cases, tcase{name: "model-f32", model: f32})
	q8 := filepath.Join(dir, "q8.gguf")
	if err := modelgen.WriteLlama(q8, modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128,
		NCtx: 512, Seed: 12, WeightType: gguf.TypeQ8_0,
	}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, tcase{name: "model-q8_0", model: q8})

	// (b) an adapter from a few real training steps, saved with metadata.
	trained := filepath.Join(dir, "trained.lora.gguf")
	func() {
		m := loadPath(t, f32, ModelOptions{})
		tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll, Threads: 1, Seed: 3,
			AdapterMetadata: map[string]string{"fireact.format": "alpaca", "fireact.base.sha256": "0123"}})
		b := agentBatch(t, m, trainText)
		for range 4 {
			if _, err := tr.Step(b, 0.05); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.Save(trained); err != nil {
			t.Fatal(err)
		}
		tr.Close()
	}()
	cases = append(cases, tcase{name: "trained-adapter", model: f32, adapters: []nodeLoRA{{trained, 1}}})
	baseOf["trained-adapter"] = "model-f32"
	cases = append(cases, tcase{name: "trained-adapter-scale-0.5", model: f32, adapters: []nodeLoRA{{trained, 0.5}}})
	baseOf["trained-adapter-scale-0.5"] = "model-f32"
	merged := filepath.Join(dir, "merged.gguf")
	if err := Merge(context.Background(), f32, []MergeLoRA{{Path: trained, Scale: 1}}, merged, MergeOptions{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, tcase{name: "merged", model: merged})
	baseOf["merged"] = "model-f32"

	// (c) a PEFT adapter (q, k, v, o and MLP targets) converted to GGUF.
	peftBase, peftBaseFile := hftest.WriteBase(t, dir, "llama")
	peftDir := filepath.Join(dir, "peft")
	hftest.WritePEFT(t, peftDir, hftest.Targets(t, peftBaseFile, 4, 3), hftest.Config(4, 8, false))
	converted := filepath.Join(dir, "converted.lora.gguf")
	if _, err := hf.PEFTToGGUF(context.Background(), peftDir, peftBaseFile, converted); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, tcase{name: "peft-base", model: peftBase})
	cases = append(cases, tcase{name: "peft-converted-adapter", model: peftBase, adapters: []nodeLoRA{{converted, 1}}})
	baseOf["peft-converted-adapter"] = "peft-base"

	ours := map[string][]Token{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := loadPath(t, tc.model, ModelOptions{})
			var as []AdapterScale
			for _, l := range tc.adapters {
				a, err := m.LoadAdapter(l.Path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Close() })
				as = append(as, AdapterScale{Adapter: a, Scale: l.Scale})
			}
			prompt, err := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := m.Tokenize(text, TokenizeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := ourGreedy(t, m, as, prompt, n, nctx)
			ours[tc.name] = got
			if b, ok := baseOf[tc.name]; ok && slices.Equal(got, ours[b]) {
				t.Fatalf("our continuation with the adapter equals the base's (%v): the comparison would prove nothing", got)
			}
			res := nodeGreedy(t, node, modules, nodeRequest{Model: tc.model, LoRA: tc.adapters, Prompt: prompt, N: n,
				Ctx: nctx, Threads: 1, Text: text})
			if !slices.Equal(res.Tokenized, plain) {
				t.Errorf("node-llama-cpp tokenizes %q as %v, we as %v", text, res.Tokenized, plain)
			}
			if !slices.Equal(res.Tokens, got) {
				i := 0
				for i < n && res.Tokens[i] == got[i] {
					i++
				}
				margin := logitMargin(t, m, as, append(slices.Clone(prompt), got[:i]...))
				t.Fatalf("greedy continuations differ at token %d (our top-2 logit margin there %.3g):\n node-llama-cpp %v\n fireact        %v",
					i, margin, res.Tokens, got)
			}
			t.Logf("%s: %d tokens agree: %v", tc.name, n, got)
		})
	}
	// The merged model must also continue as base + adapter (ours).
	if m, b := ours["merged"], ours["trained-adapter"]; m != nil && b != nil && !slices.Equal(m, b) {
		t.Errorf("the merged model continues %v, base + adapter %v", m, b)
	}
}
