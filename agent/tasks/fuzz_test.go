package tasks

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoaders feeds arbitrary bytes to the question-file loaders (HotpotQA and
// StrategyQA JSON, Bamboogle CSV), seeded with the start of FireAct's real
// files when ../shared is beside the checkout: each loads or errors, never
// panics.
func FuzzLoaders(f *testing.F) {
	for _, p := range []string{
		"../../../shared/data/fireact/hotpotqa/dev.json",
		"../../../shared/data/fireact/bamboogle/test.csv",
	} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b[:min(len(b), 8<<10)])
		}
	}
	if ms, _ := filepath.Glob("../../../shared/data/fireact/strategyqa/*.json"); len(ms) > 0 {
		if b, err := os.ReadFile(ms[0]); err == nil {
			f.Add(b[:min(len(b), 8<<10)])
		}
	}
	f.Add([]byte(`[{"question": "Q?", "answer": "A", "_id": "1"}]`))
	f.Add([]byte(`[{"qid": "1", "question": "Q?", "answer": true, "facts": ["f"]}]`))
	f.Add([]byte("Question,Answer\nWho?,Me\n\"unterminated"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "questions")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		check := func(name string, s *Static, err error) {
			if err == nil && s == nil {
				t.Fatalf("%s: no error and no task", name)
			}
		}
		s, err := LoadHotpotQA(p, "dev")
		check("hotpotqa", s, err)
		s, err = LoadStrategyQA(p, "dev", ScoringFireAct)
		check("strategyqa", s, err)
		s, err = LoadBamboogle(p, "test")
		check("bamboogle", s, err)
	})
}
