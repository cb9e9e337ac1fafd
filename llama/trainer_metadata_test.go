package llama

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
)

// TestTrainerSaveAdapterMetadata saves a trained adapter with metadata through
// the real C save path and reads it back with llama/gguf: every key and value
// (a multi-line template with quotes, braces and non-ASCII text among them)
// arrives byte for byte, llama.cpp's own keys are still there, and llama.cpp
// still loads the file.
func TestTrainerSaveAdapterMetadata(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 21), ModelOptions{})
	tmpl := "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m[\"content\"] }}<|im_end|>\n{% endfor %}— ünïcode ✓"
	meta := map[string]string{
		"fireact.format":        "chat",
		"fireact.chat_template": tmpl,
		"fireact.base.sha256":   strings.Repeat("ab", 32),
		"fireact.lora.rank":     "4",
		"fireact.empty":         "",
	}
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Alpha: 6, Targets: TargetQ | TargetV | TargetDown, Threads: 1, AdapterMetadata: meta})
	if _, err := tr.Step(agentBatch(t, m, trainText), 0.01); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.gguf")
	if err := tr.Save(path); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range meta {
		got, ok := f.String(k)
		if !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	for k, want := range map[string]string{"general.type": "adapter", "adapter.type": "lora", "general.architecture": "llama"} {
		if got, _ := f.String(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if a, ok := f.Float("adapter.lora.alpha"); !ok || a != 6 {
		t.Errorf("adapter.lora.alpha = %v (present %v), want 6", a, ok)
	}
	a, err := m.LoadAdapter(path)
	if err != nil {
		t.Fatalf("llama.cpp refuses the adapter with metadata: %v", err)
	}
	a.Close()

	// Without metadata the file has no fireact key at all.
	tr2 := newTrainer(t, m, TrainerOptions{Rank: 4, Threads: 1})
	plain := filepath.Join(dir, "plain.gguf")
	if err := tr2.Save(plain); err != nil {
		t.Fatal(err)
	}
	pf, err := gguf.Read(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range pf.KVs {
		if strings.HasPrefix(kv.Key, "fireact.") {
			t.Errorf("adapter saved without metadata has key %s", kv.Key)
		}
	}
}

// TestTrainerAdapterMetadataRefused: keys that llama.cpp reads (or could) and
// values the C strings would cut short are refused before anything is built.
func TestTrainerAdapterMetadataRefused(t *testing.T) {
	m := loadPath(t, trainModel(t, t.TempDir(), "base", 64, 22), ModelOptions{})
	for _, kv := range []map[string]string{
		{"adapter.lora.alpha": "1"},
		{"general.architecture": "qwen2"},
		{"fireact.": "x"},
		{"fireactformat": "chat"},
		{"fireact.format": "ch\x00at"},
	} {
		tr, err := NewTrainer(m, TrainerOptions{Rank: 2, Threads: 1, AdapterMetadata: kv})
		if err == nil {
			tr.Close()
			t.Errorf("metadata %q accepted", kv)
		} else if !strings.Contains(err.Error(), "metadata") {
			t.Errorf("metadata %q: error %q does not say what is wrong", kv, err)
		}
	}
}

// TestTargetString: String is what ParseTargets reads back.
func TestTargetString(t *testing.T) {
	for _, tg := range []Target{TargetsQV, TargetsAll, TargetsAll | TargetOutput, TargetQ | TargetDown | TargetOutput, TargetO} {
		s := tg.String()
		back, err := ParseTargets(s)
		if err != nil || back != tg {
			t.Errorf("%d.String() = %q, parsed back as %d, %v", tg, s, back, err)
		}
	}
	if s := TargetsQV.String(); s != "q,v" {
		t.Errorf("TargetsQV = %q, want q,v", s)
	}
}
