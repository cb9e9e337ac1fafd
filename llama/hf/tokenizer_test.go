package hf

import (
	"path/filepath"
	"testing"
	"time"
)

const tokenizersDir = "../../../shared/data/tokenizers"

func TestReadRealTokenizersSummary(t *testing.T) {
	for _, name := range []string{"llama-3.1", "qwen3", "gemma-3", "mistral-v0.1"} {
		start := time.Now()
		tok, err := ReadTokenizer(filepath.Join(tokenizersDir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v model=%s pre=%q n=%d merges=%d bos=%d eos=%d unk=%d pad=%d addbos=%v addeos=%v prefix=%v tmpl=%d", name, time.Since(start), tok.Model, tok.Pre, tok.Len(), len(tok.Merges), tok.BOS, tok.EOS, tok.UNK, tok.PAD, tok.AddBOS, tok.AddEOS, tok.AddSpacePrefix, len(tok.ChatTemplate))
	}
}
