package finetune

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/store"
)

// TestRunRecordsAdapterUsage: the adapter a training run writes says how it
// was trained (format, chat template, base hash, LoRA settings, recipe), in
// keys ReadAdapterUsage reads back; llama.cpp's keys stay as they were and
// llama.cpp loads the file. Both the chat format (with a built-in template
// override) and alpaca (FireAct's recipe) are checked.
func TestRunRecordsAdapterUsage(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	base := genModel(t, dir, 4, "")
	hash, err := store.FileHash(base)
	if err != nil {
		t.Fatal(err)
	}
	data := hotpotSlice(t, dir, 3)
	for _, tc := range []struct {
		name    string
		cfg     Config
		want    AdapterUsage
		targets string
	}{
		{"chat", Config{Template: TemplateChat, ChatTemplate: "chatml", Rank: 2, Alpha: 3, Targets: llama.TargetQ | llama.TargetDown},
			AdapterUsage{Format: "chat", ChatTemplate: "chatml", Rank: 2, Alpha: 3, Targets: "q,down", Recipe: "agent"}, ""},
		{"alpaca-fireact", Config{Recipe: RecipeFireAct, Rank: 4},
			AdapterUsage{Format: "alpaca", Rank: 4, Alpha: 8, Targets: "q,v", Recipe: "fireact"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Base, cfg.Out, cfg.DataFile = base, filepath.Join(dir, tc.name+".gguf"), data
			cfg.MaxSteps, cfg.Cutoff, cfg.MaxTokens, cfg.BatchExamples, cfg.Val, cfg.Threads = 1, 256, 512, 1, -1, 1
			if _, err := Run(context.Background(), s, cfg); err != nil {
				t.Fatal(err)
			}
			u, err := ReadAdapterUsage(cfg.Out)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Path, want.Recorded, want.BaseSHA256, want.BaseName = cfg.Out, true, hash, "gen.gguf"
			if u != want {
				t.Errorf("usage\n got %+v\nwant %+v", u, want)
			}
			if w := u.BaseWarning(hash); w != "" {
				t.Errorf("warning on the training base: %s", w)
			}
			if w := u.BaseWarning(strings.Repeat("0", 64)); !strings.Contains(w, "gen.gguf") || !strings.Contains(w, hash[:12]) {
				t.Errorf("warning on another base = %q, want one naming the recorded base and its hash", w)
			}
			f, err := gguf.Read(cfg.Out)
			if err != nil {
				t.Fatal(err)
			}
			if a, _ := f.Float("adapter.lora.alpha"); a != want.Alpha {
				t.Errorf("adapter.lora.alpha = %v, want %v", a, want.Alpha)
			}
			if v, _ := f.String(KeyCutoff); v != "256" {
				t.Errorf("%s = %q, want 256", KeyCutoff, v)
			}
			m := loadModel(t, base, llama.ModelOptions{})
			a, err := m.LoadAdapter(cfg.Out)
			if err != nil {
				t.Fatal(err)
			}
			a.Close()
		})
	}
	t.Run("model-template", func(t *testing.T) {
		// Without an override, the base's own template text is recorded.
		const tmpl = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
		d := t.TempDir()
		b := genModel(t, d, 5, tmpl)
		out := filepath.Join(d, "a.gguf")
		cfg := Config{Base: b, Out: out, DataFile: data, Template: TemplateChat, MaxSteps: 1, Cutoff: 256, Val: -1, Threads: 1, Rank: 2}
		if _, err := Run(context.Background(), openStore(t, d), cfg); err != nil {
			t.Fatal(err)
		}
		u, err := ReadAdapterUsage(out)
		if err != nil {
			t.Fatal(err)
		}
		if u.Format != "chat" || u.ChatTemplate != tmpl {
			t.Errorf("format %q template %q, want chat and the model's template", u.Format, u.ChatTemplate)
		}
	})
}

// writeAdapterKVs writes a GGUF adapter header with the given metadata.
func writeAdapterKVs(t *testing.T, path string, kv map[string]any) {
	t.Helper()
	w := gguf.NewWriter()
	for _, k := range []string{"general.type", "general.architecture", "adapter.type"} {
		if err := w.Set(k, map[string]string{"general.type": "adapter", "general.architecture": "llama", "adapter.type": "lora"}[k]); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range kv {
		if err := w.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

// TestReadAdapterUsage: adapters without usage keys read as unrecorded,
// malformed values are errors naming the file and the key, and the prompt
// defaults of several adapters come from the first, with a warning when
// another disagrees.
func TestReadAdapterUsage(t *testing.T) {
	dir := t.TempDir()
	p := func(name string, kv map[string]any) string {
		path := filepath.Join(dir, name+".gguf")
		writeAdapterKVs(t, path, kv)
		return path
	}
	none := p("none", nil)
	if u, err := ReadAdapterUsage(none); err != nil || u.Recorded || u.Format != "" {
		t.Errorf("adapter without usage: %+v, %v", u, err)
	}
	for _, c := range []struct {
		name, key string
		kv        map[string]any
	}{
		{"bad-format", KeyFormat, map[string]any{KeyFormat: "fewshot"}},
		{"format-not-string", KeyFormat, map[string]any{KeyFormat: uint32(1)}},
		{"bad-rank", KeyRank, map[string]any{KeyFormat: "chat", KeyRank: "eight"}},
		{"bad-alpha", KeyAlpha, map[string]any{KeyFormat: "chat", KeyAlpha: "1/2"}},
		{"template-not-string", KeyChatTemplate, map[string]any{KeyFormat: "chat", KeyChatTemplate: int32(3)}},
	} {
		path := p(c.name, c.kv)
		_, err := ReadAdapterUsage(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: error %v, want one naming %s and %s", c.name, err, path, c.key)
		}
	}
	if _, err := ReadAdapterUsage(filepath.Join(dir, "missing.gguf")); err == nil {
		t.Error("missing file: no error")
	}

	chat := p("chat", map[string]any{KeyFormat: "chat", KeyChatTemplate: "chatml", KeyBaseSHA256: "aa"})
	alpaca := p("alpaca", map[string]any{KeyFormat: "alpaca"})
	text := p("text", map[string]any{KeyFormat: "text"})
	us, d, err := AdapterPromptDefaults([]string{none, text, chat, alpaca})
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 4 || d.Format != "chat" || d.ChatTemplate != "chatml" {
		t.Errorf("defaults %+v from %d usages, want chat/chatml", d, len(us))
	}
	if len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], alpaca) {
		t.Errorf("warnings %q, want one about %s", d.Warnings, alpaca)
	}
	if _, d, _ := AdapterPromptDefaults([]string{none, text}); d.Format != "" || len(d.Warnings) != 0 {
		t.Errorf("no prompt format recorded, got %+v", d)
	}
	if _, d, _ := AdapterPromptDefaults([]string{alpaca, alpaca}); d.Format != "alpaca" || len(d.Warnings) != 0 {
		t.Errorf("two agreeing adapters: %+v", d)
	}
}
