package llama

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// TestPerplexityHonoursAddBOS: a vocabulary without add_bos_token (Qwen,
// SmolLM) gets no BOS prepended; the first token is only context and every
// other token is scored exactly once, also across windows. With add_bos every
// token is scored after a BOS.
func TestPerplexityHonoursAddBOS(t *testing.T) {
	text := strings.Repeat("the cat sat on the mat and the dog ran to the park . ", 25)
	for _, noBOS := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		cfg := modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
			NEmbd: 32, NLayer: 1, NHead: 2, NFF: 64, NCtx: 512, Seed: 3, NoAddBOS: noBOS}
		if err := modelgen.WriteLlama(path, cfg); err != nil {
			t.Fatal(err)
		}
		m, err := LoadModel(path, ModelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Info().AddBOS == noBOS {
			t.Fatalf("add_bos = %v, want %v", m.Info().AddBOS, !noBOS)
		}
		toks, err := m.Tokenize(text, TokenizeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The exact value: one window over the whole text.
		big, err := m.NewContext(ContextOptions{NCtx: 512})
		if err != nil {
			t.Fatal(err)
		}
		defer big.Close()
		seq := toks
		if !noBOS {
			seq = append([]Token{m.Info().BOS}, toks...)
		}
		lp, err := big.ScoreTokens(seq)
		if err != nil {
			t.Fatal(err)
		}
		var nll float64
		for _, v := range lp {
			nll -= float64(v)
		}
		want := math.Exp(nll / float64(len(lp)))
		r, err := big.Perplexity(text)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.Perplexity-want) > 1e-6*want || r.Tokens != len(lp) || r.Windows != 1 {
			t.Errorf("noBOS=%v: perplexity %.6f over %d tokens in %d windows, want %.6f over %d in 1",
				noBOS, r.Perplexity, r.Tokens, r.Windows, want, len(lp))
		}
		// Small windows: still every token scored once (the first only as
		// context without BOS).
		small, err := m.NewContext(ContextOptions{NCtx: 256})
		if err != nil {
			t.Fatal(err)
		}
		defer small.Close()
		rs, err := small.Perplexity(text)
		if err != nil {
			t.Fatal(err)
		}
		wantTokens := len(toks)
		if noBOS {
			wantTokens--
		}
		if rs.Tokens != wantTokens || rs.Windows < 2 {
			t.Errorf("noBOS=%v, 256-token windows: %d tokens scored in %d windows, want %d in ≥ 2", noBOS, rs.Tokens, rs.Windows, wantTokens)
		}
	}
}
