package dataformat

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadFile feeds arbitrary bytes to the fine-tuning file readers (alpaca
// array, GPT/ShareGPT JSON lines), seeded with the start of FireAct's released
// fine-tuning sets when ../shared is beside the checkout. A reader must report
// bad rows with a line number inside the file, never panic.
func FuzzReadFile(f *testing.F) {
	for _, p := range []string{
		"../../../shared/data/fireact/finetune/alpaca_format/hotpotqa.json",
		"../../../shared/data/fireact/finetune/gpt_format/hotpotqa.jsonl",
	} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b[:min(len(b), 16<<10)])
		}
	}
	f.Add([]byte(`[{"instruction": "Q", "input": "", "output": "Thought: x\nAction: finish[y]"}]`))
	f.Add([]byte(`{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}` + "\n{\n"))
	f.Add([]byte(`[{"instruction": 1}, {]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "set")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		lines := 1
		for _, c := range data {
			if c == '\n' {
				lines++
			}
		}
		for _, fm := range []Format{Alpaca, GPT, ShareGPT} {
			_, bad, err := ReadFile(p, fm)
			if err != nil {
				t.Fatalf("%s: a readable file gave a file error: %v", fm, err)
			}
			for _, re := range bad {
				if re.File != p || re.Line < 1 || re.Line > lines {
					t.Fatalf("%s: row error %+v points outside the file's %d lines", fm, re, lines)
				}
			}
		}
	})
}
