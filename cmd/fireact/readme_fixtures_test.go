package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf/hftest"
	"github.com/fireact/fireact/llama/modelgen"
)

// realData is FireAct's released data beside the checkout.
const realData = "../../../shared/data"

// readmeFixtures is the world the README's command lines run in: work is the
// current directory and ../shared/data beside it holds FireAct's data.
type readmeFixtures struct {
	root, work string
	addr       string // where `fireact serve` listens (FIREACT_ADDR)
}

func newReadmeFixtures(t *testing.T) *readmeFixtures {
	t.Helper()
	real, err := filepath.Abs(realData)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(real, "fireact")); err != nil {
		t.Fatalf("FireAct's data is not beside the checkout: %v", err)
	}
	root := t.TempDir()
	fx := &readmeFixtures{root: root, work: filepath.Join(root, "work")}
	data := filepath.Join(root, "shared", "data")
	mkdir(t, fx.work, filepath.Join(data, "fireact", "hotpotqa"), filepath.Join(data, "fireact", "finetune", "alpaca_format"))

	// FireAct's data: small files as they are, the large ones cut to their
	// first records so that the README's full-size commands finish in seconds.
	link(t, filepath.Join(real, "models"), filepath.Join(data, "models"))
	for _, d := range []string{"LICENSE", "bamboogle", "mmlu", "prompts", "strategyqa", "finetune/gpt_format"} {
		link(t, filepath.Join(real, "fireact", d), filepath.Join(data, "fireact", d))
	}
	dev := readJSONArray(t, filepath.Join(real, "fireact", "hotpotqa", "dev.json"))
	writeJSON(t, filepath.Join(data, "fireact", "hotpotqa", "dev.json"), dev[:8])
	// HotpotQA's train split is not among FireAct's released files; users bring
	// it. Dev questions in the same layout stand for it.
	writeJSON(t, filepath.Join(data, "fireact", "hotpotqa", "train.json"), dev[8:14])
	for _, name := range []string{"hotpotqa.json", "hotpotqa_multimethod.json", "multitask.json", "multitask_multimethod.json"} {
		rows := readJSONArray(t, filepath.Join(real, "fireact", "finetune", "alpaca_format", name))
		writeJSON(t, filepath.Join(data, "fireact", "finetune", "alpaca_format", name), rows[:3])
	}

	// Models: stories260K for the text commands, and one small llama made in
	// code, whose vocabulary has the agent's words, standing for the 7B base.
	copyFile(t, filepath.Join(real, "models", "stories260K.gguf"), filepath.Join(fx.work, "model.gguf"))
	base, err := gguf.Read(filepath.Join(fx.work, "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	lora := modelgen.LoRAConfig{Targets: modelgen.AllTargets(base, "attn_q", "attn_v"), Rank: 4, Seed: 1}
	if err := modelgen.WriteLoRA(filepath.Join(fx.work, "a.gguf"), base, lora); err != nil {
		t.Fatal(err)
	}
	student := filepath.Join(fx.work, "llama-2-7b.Q4_K_M.gguf")
	err = modelgen.WriteLlama(student, modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 4096, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, student, filepath.Join(fx.work, "base.gguf"))
	// A PEFT adapter in Hugging Face's layout for that base.
	studentFile, err := gguf.Read(student)
	if err != nil {
		t.Fatal(err)
	}
	peftDir := filepath.Join(fx.work, "peft_dir")
	mkdir(t, peftDir)
	hftest.WritePEFT(t, peftDir, hftest.Targets(t, studentFile, 4, 1), hftest.Config(4, 8, false))
	// A Hugging Face checkpoint (config.json, safetensors, Mistral's real tokenizer).
	_, hfDir := hftest.WriteCheckpoint(t, filepath.Join(root, "checkpoint"), hftest.Checkpoint{
		Arch: "llama", HFArch: "LlamaForCausalLM", Tokenizer: filepath.Join(real, "tokenizers", "mistral-v0.1"),
		NEmbd: 32, NLayer: 1, NHead: 4, NHeadKV: 2, NFF: 64, Seed: 1,
	})
	link(t, hfDir, filepath.Join(fx.work, "hf_model"))

	writeFile(t, filepath.Join(fx.work, "text.txt"), "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.\n")
	writeFile(t, filepath.Join(fx.work, "g.gbnf"), "root ::= \" there was a \" [a-z]+ \".\"\n")
	var wiki strings.Builder
	for _, q := range dev[:14] {
		fmt.Fprintf(&wiki, "{\"title\": %q, \"text\": %q}\n", q["answer"], "A page about "+fmt.Sprint(q["answer"])+".")
	}
	writeFile(t, filepath.Join(fx.work, "wiki.jsonl"), wiki.String())
	// HotpotQA's abstracts dump and a BEIR corpus, in their real layouts.
	link(t, mustAbs(t, "../../agent/testdata/hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"),
		filepath.Join(fx.work, "enwiki-20171001-pages-meta-current-withlinks-abstracts"))
	copyFile(t, "../../agent/testdata/beir/corpus.jsonl", filepath.Join(fx.work, "corpus.jsonl"))
	fx.writeFireActResults(t, dev)

	// The teacher: an OpenAI-compatible server that answers each question
	// with its gold answer in FireAct's ReAct text.
	gold := map[string]string{}
	for _, q := range dev[:14] {
		gold[strings.TrimSpace(fmt.Sprint(q["question"]))] = fmt.Sprint(q["answer"])
	}
	srv := httptest.NewServer(teacherHandler(t, gold))
	t.Cleanup(srv.Close)
	t.Setenv("OPENAI_BASE_URL", srv.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", "sk-readme-test")
	t.Setenv("SERPAPI_API_KEY", "readme-test")
	fx.addr = freeAddr(t)
	t.Setenv("FIREACT_ADDR", fx.addr)
	return fx
}

// writeFireActResults writes a result file of FireAct's generation.py for
// the first dev questions: keyed by question index, "em" a JSON boolean,
// "traj" the whole prompt and response in the alpaca layout.
func (fx *readmeFixtures) writeFireActResults(t *testing.T, dev []map[string]any) {
	t.Helper()
	out := map[string]any{}
	for i, q := range dev[:3] {
		ans := fmt.Sprint(q["answer"])
		pred := ans
		if i == 2 {
			pred = "someone else"
		}
		traj := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
			fmt.Sprint(q["question"]) + "\n\n### Response:\nThought: I need to search " + ans + ".\nAction: search[" + ans + "]\nObservation: A page about " + ans +
			".\nThought: So the answer is " + pred + ".\nAction: finish[" + pred + "]\nObservation: Episode finished, reward = " + pyBool(pred == ans) + "\n"
		out[fmt.Sprint(i)] = map[string]any{
			"reward": pred == ans, "em": pred == ans, "f1": map[bool]float64{true: 1, false: 0}[pred == ans],
			"gt": strings.ToLower(ans), "pred": strings.ToLower(pred), "prompt": "", "traj": traj,
			"traj_by_line": strings.Split(traj, "\n"),
		}
	}
	mkdir(t, filepath.Join(fx.work, "trajs"))
	writeJSON(t, filepath.Join(fx.work, "trajs", "hotpotqa_dev_0_500_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json"), out)
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// teacherHandler serves /v1/chat/completions and /v1/completions in the
// OpenAI wire format.
func teacherHandler(t *testing.T, gold map[string]string) http.Handler {
	// The question asked is the gold question that appears last in the
	// prompt (few-shot examples come before it).
	answer := func(text string) string {
		best, at := "", -1
		for q, a := range gold {
			if i := strings.LastIndex(text, q); i > at {
				best, at = a, i
			}
		}
		if at < 0 {
			return "Thought: I do not know.\nAction: finish[unknown]"
		}
		return "Thought: I know this one.\nAction: finish[" + best + "]"
	}
	mux := http.NewServeMux()
	usage := map[string]int{"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var all strings.Builder
		for _, m := range req.Messages {
			all.WriteString(m.Content + "\n")
		}
		json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": answer(all.String())}}},
			"usage": usage,
		})
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Prompt string `json:"prompt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"id": "cmpl-1", "object": "text_completion", "created": 1, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "text": answer(req.Prompt)}},
			"usage":   usage,
		})
	})
	return mux
}

// waitServing waits until `fireact serve` answers /health at fx.addr.
func (fx *readmeFixtures) waitServing(ctx context.Context, served <-chan error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			return fmt.Errorf("serve stopped: %v", err)
		default:
		}
		resp, err := http.Get("http://" + fx.addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("serve did not answer /health at %s", fx.addr)
}

// curl runs a README curl line, with the README's 127.0.0.1:8080 pointed at
// the test's server, and checks it got a JSON answer.
func (fx *readmeFixtures) curl(t *testing.T, where string, args []string) {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Logf("%s: skipped (no curl on this machine)", where)
		return
	}
	var argv []string
	for _, a := range args[1:] {
		argv = append(argv, strings.ReplaceAll(a, "127.0.0.1:8080", fx.addr))
	}
	out, err := exec.Command(bin, append([]string{"-sS", "--fail-with-body"}, argv...)...).CombinedOutput()
	if err != nil || !json.Valid(out) {
		t.Errorf("%s: %v\n%s", where, err, out)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func mkdir(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func link(t *testing.T, from, to string) {
	t.Helper()
	mkdir(t, filepath.Dir(to))
	if err := os.Symlink(from, to); err != nil {
		t.Fatal(err)
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func readJSONArray(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}
