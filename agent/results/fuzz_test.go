package results

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadFile feeds arbitrary bytes to the FireAct result-file reader, seeded
// with FireAct's real result files and cuts of them: it must return entries or
// an error, never panic.
func FuzzReadFile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"0": {"gt": "x", "pred": "y", "em": 1, "f1": 1, "traj": "t"}}`))
	f.Add([]byte(`{"x": {}}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "hotpotqa_dev_0_1_m_0.0_2023.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries, err := ReadFile(p)
		if err == nil && entries == nil {
			t.Fatal("no error and no entries")
		}
	})
}
