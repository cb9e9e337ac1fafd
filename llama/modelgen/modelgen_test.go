package modelgen

import (
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fireact/fireact/llama/gguf"
)

// spmTokenize is a minimal model of llama.cpp's SPM tokenizer (without byte
// fallback): start from characters, repeatedly merge the adjacent pair whose
// concatenation is a token with the highest score (leftmost on ties).
func spmTokenize(v Vocab, text string) []string {
	ids := map[string]int{}
	for i, t := range v.Tokens {
		ids[t] = i
	}
	s := spaceMarker + strings.ReplaceAll(text, " ", spaceMarker)
	var sym []string
	for _, r := range s {
		sym = append(sym, string(r))
	}
	for {
		best, bestScore := -1, float32(math.Inf(-1))
		for i := 0; i+1 < len(sym); i++ {
			if id, ok := ids[sym[i]+sym[i+1]]; ok && v.Scores[id] > bestScore {
				best, bestScore = i, v.Scores[id]
			}
		}
		if best < 0 {
			return sym
		}
		sym[best] += sym[best+1]
		sym = append(sym[:best+1], sym[best+2:]...)
	}
}

func TestSPMVocab(t *testing.T) {
	words := []string{"hello", "world", "hell", "Thought:", "naïve", "hello"}
	v := SPMVocab(words)
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	fixed := []struct {
		id  int
		tok string
		typ int32
	}{
		{0, "<unk>", TokenUnknown}, {1, "<s>", TokenControl}, {2, "</s>", TokenControl},
		{3, "<0x00>", TokenByte}, {13, "<0x0A>", TokenByte}, {258, "<0xFF>", TokenByte},
		{259, spaceMarker, TokenNormal},
	}
	for _, f := range fixed {
		if v.Tokens[f.id] != f.tok || v.Types[f.id] != f.typ {
			t.Errorf("token %d = %q type %d, want %q type %d", f.id, v.Tokens[f.id], v.Types[f.id], f.tok, f.typ)
		}
	}
	if v.BOS != 1 || v.EOS != 2 || v.UNK != 0 {
		t.Errorf("special ids %d %d %d", v.BOS, v.EOS, v.UNK)
	}
	for _, tok := range []string{"▁hello", "hello", "▁he", "he", "ï", "▁naïve", "Thought:", "▁Thought:", "a", "Z", "~"} {
		id := v.ID(tok)
		if id < 0 {
			t.Errorf("token %q missing", tok)
			continue
		}
		if want := float32(utf8.RuneCountInString(tok)); v.Scores[id] != want {
			t.Errorf("score of %q = %g, want %g", tok, v.Scores[id], want)
		}
	}
	tokenize := []struct {
		text string
		want []string
	}{
		{"hello world", []string{"▁hello", "▁world"}},
		{"hell", []string{"▁hell"}},
		{"hello hellohello", []string{"▁hello", "▁hello", "hello"}},
		{"Thought: naïve", []string{"▁Thought:", "▁naïve"}},
		{"held", []string{"▁hel", "d"}},
	}
	for _, c := range tokenize {
		if got := spmTokenize(v, c.text); !reflect.DeepEqual(got, c.want) {
			t.Errorf("tokenize(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	// Every basic word is a single token after a space.
	b := SPMVocab(BasicWords())
	for _, w := range BasicWords() {
		if got := spmTokenize(b, w); len(got) != 1 {
			t.Errorf("basic word %q tokenizes to %q", w, got)
		}
	}
}

func TestVocabPad(t *testing.T) {
	v := SPMVocab(BasicWords())
	for _, n := range []int{v.Len(), v.Len() + 1, 2000, 32000} {
		p, err := v.Pad(n)
		if err != nil {
			t.Fatal(err)
		}
		if p.Len() != n {
			t.Errorf("Pad(%d) has %d tokens", n, p.Len())
		}
		if err := p.Validate(); err != nil {
			t.Errorf("Pad(%d): %v", n, err)
		}
		if !reflect.DeepEqual(p.Tokens[:v.Len()], v.Tokens) {
			t.Errorf("Pad(%d) changed existing tokens", n)
		}
	}
	if _, err := v.Pad(10); err == nil {
		t.Error("Pad below the current size: no error")
	}
}

func TestVocabValidate(t *testing.T) {
	good := SPMVocab([]string{"x"})
	cases := map[string]func(v *Vocab){
		"empty":      func(v *Vocab) { *v = Vocab{} },
		"dup":        func(v *Vocab) { v.Tokens[5] = v.Tokens[4] },
		"empty tok":  func(v *Vocab) { v.Tokens[5] = "" },
		"scores len": func(v *Vocab) { v.Scores = v.Scores[1:] },
		"bos range":  func(v *Vocab) { v.BOS = int32(len(v.Tokens)) },
	}
	for name, mutate := range cases {
		v := Vocab{Tokens: append([]string(nil), good.Tokens...), Scores: good.Scores, Types: good.Types}
		mutate(&v)
		if err := v.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func tinyConfig() LlamaConfig {
	return LlamaConfig{
		Vocab:  SPMVocab(BasicWords()),
		NEmbd:  64,
		NLayer: 2,
		NHead:  4,
		NFF:    96,
		NCtx:   256,
		Seed:   42,
	}
}

func readTensor(t *testing.T, f *gguf.File, name string) []float32 {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("tensor %q missing", name)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, ti.Size())
	if _, err := fh.ReadAt(b, f.DataOffset+int64(ti.Offset)); err != nil {
		t.Fatal(err)
	}
	x, err := gguf.Dequantize(ti.Type, b, int(ti.Elements()))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestWriteLlama(t *testing.T) {
	gqa := tinyConfig()
	gqa.NHeadKV = 2
	gqa.WeightType = gguf.TypeQ4_0
	gqa.ChatTemplate = "{{ messages }}"
	q8 := tinyConfig()
	q8.WeightType, q8.EmbedType, q8.TiedOutput = gguf.TypeQ8_0, gguf.TypeQ8_0, true
	qwen := tinyConfig()
	qwen.Arch, qwen.WeightType, qwen.OutputType, qwen.InitStd = "qwen2", gguf.TypeF16, gguf.TypeF16, 0.05

	cases := []struct {
		name string
		cfg  LlamaConfig
	}{{"llama-f32", tinyConfig()}, {"llama-q4-gqa", gqa}, {"llama-q8-tied", q8}, {"qwen2-f16", qwen}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := WriteLlama(path, c.cfg); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.cfg.withDefaults()
			a := cfg.Arch
			if f.Architecture() != a {
				t.Errorf("arch %q", f.Architecture())
			}
			nKV := cfg.NHeadKV
			uints := map[string]uint64{
				a + ".context_length": 256, a + ".embedding_length": 64, a + ".block_count": 2,
				a + ".feed_forward_length": 96, a + ".attention.head_count": 4,
				a + ".attention.head_count_kv": uint64(nKV), a + ".rope.dimension_count": 16,
				a + ".vocab_size": uint64(cfg.Vocab.Len()), "general.file_type": uint64(fileType(cfg.WeightType)),
				"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
			}
			for k, want := range uints {
				if got, ok := f.Uint(k); !ok || got != want {
					t.Errorf("%s = %d (%v), want %d", k, got, ok, want)
				}
			}
			if v, _ := f.Float(a + ".attention.layer_norm_rms_epsilon"); float32(v) != 1e-5 {
				t.Errorf("rms eps %g", v)
			}
			if v, _ := f.Float(a + ".rope.freq_base"); v != 10000 {
				t.Errorf("freq base %g", v)
			}
			if m, _ := f.String("tokenizer.ggml.model"); m != "llama" {
				t.Errorf("tokenizer model %q", m)
			}
			if v, _ := f.Get("tokenizer.ggml.add_bos_token"); v != true {
				t.Errorf("add_bos_token %v", v)
			}
			if v, _ := f.Get("tokenizer.ggml.add_eos_token"); v != false {
				t.Errorf("add_eos_token %v", v)
			}
			if toks, _ := f.Strings("tokenizer.ggml.tokens"); !reflect.DeepEqual(toks, cfg.Vocab.Tokens) {
				t.Error("tokens differ")
			}
			tmpl, ok := f.String("tokenizer.chat_template")
			if ok != (cfg.ChatTemplate != "") || tmpl != cfg.ChatTemplate {
				t.Errorf("chat template %q %v", tmpl, ok)
			}

			kvDim := uint64(64 / 4 * nKV)
			V := uint64(cfg.Vocab.Len())
			want := map[string]struct {
				shape []uint64
				typ   gguf.Type
			}{
				"token_embd.weight":        {[]uint64{64, V}, cfg.EmbedType},
				"output_norm.weight":       {[]uint64{64}, gguf.TypeF32},
				"blk.1.attn_norm.weight":   {[]uint64{64}, gguf.TypeF32},
				"blk.1.attn_q.weight":      {[]uint64{64, 64}, cfg.WeightType},
				"blk.1.attn_k.weight":      {[]uint64{64, kvDim}, cfg.WeightType},
				"blk.1.attn_v.weight":      {[]uint64{64, kvDim}, cfg.WeightType},
				"blk.1.attn_output.weight": {[]uint64{64, 64}, cfg.WeightType},
				"blk.1.ffn_norm.weight":    {[]uint64{64}, gguf.TypeF32},
				"blk.1.ffn_gate.weight":    {[]uint64{64, 96}, cfg.WeightType},
				"blk.1.ffn_up.weight":      {[]uint64{64, 96}, cfg.WeightType},
				"blk.1.ffn_down.weight":    {[]uint64{96, 64}, cfg.WeightType},
			}
			if !cfg.TiedOutput {
				want["output.weight"] = struct {
					shape []uint64
					typ   gguf.Type
				}{[]uint64{64, V}, cfg.OutputType}
			}
			nTensors := 2 + 9*2
			if !cfg.TiedOutput {
				nTensors++
			}
			if a == "qwen2" {
				nTensors += 3 * 2
				want["blk.0.attn_q.bias"] = struct {
					shape []uint64
					typ   gguf.Type
				}{[]uint64{64}, gguf.TypeF32}
				want["blk.0.attn_k.bias"] = struct {
					shape []uint64
					typ   gguf.Type
				}{[]uint64{kvDim}, gguf.TypeF32}
			}
			if len(f.Tensors) != nTensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), nTensors)
			}
			for name, w := range want {
				ti, ok := f.Tensor(name)
				if !ok {
					t.Errorf("tensor %q missing", name)
					continue
				}
				if !reflect.DeepEqual(ti.Shape, w.shape) || ti.Type != w.typ {
					t.Errorf("%s: %v %s, want %v %s", name, ti.Shape, ti.Type, w.shape, w.typ)
				}
			}
			if _, ok := f.Tensor("output.weight"); ok == cfg.TiedOutput {
				t.Errorf("output.weight present=%v with TiedOutput=%v", ok, cfg.TiedOutput)
			}
			var elems int64
			for _, ti := range f.Tensors {
				elems += ti.Elements()
			}
			if p := c.cfg.Params(); p != elems {
				t.Errorf("Params() = %d, tensors hold %d", p, elems)
			}

			for _, x := range readTensor(t, f, "blk.0.ffn_norm.weight") {
				if x != 1 {
					t.Fatalf("norm weight %g, want 1", x)
				}
			}
			w := readTensor(t, f, "blk.0.ffn_gate.weight")
			var sum, sq float64
			for _, x := range w {
				sum += float64(x)
				sq += float64(x) * float64(x)
			}
			mean := sum / float64(len(w))
			std := math.Sqrt(sq/float64(len(w)) - mean*mean)
			wantStd := float64(cfg.InitStd)
			if wantStd == 0 {
				wantStd = 1 / math.Sqrt(64)
			}
			// Q4_0 adds noise of about d/sqrt(12) with d ≈ 3.46σ/8.
			if math.Abs(mean) > wantStd/10 || math.Abs(std-wantStd) > wantStd*0.1 {
				t.Errorf("ffn_gate mean %g std %g, want 0 and %g", mean, std, wantStd)
			}
		})
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestWriteLlamaDeterministic(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, cfg LlamaConfig) [32]byte {
		p := filepath.Join(dir, name)
		if err := WriteLlama(p, cfg); err != nil {
			t.Fatal(err)
		}
		return fileHash(t, p)
	}
	for _, wt := range []gguf.Type{gguf.TypeF32, gguf.TypeQ4_0} {
		cfg := tinyConfig()
		cfg.WeightType = wt
		a := write("a.gguf", cfg)
		b := write("b.gguf", cfg)
		if a != b {
			t.Errorf("%s: same seed, different bytes", wt)
		}
		cfg.Seed++
		if c := write("c.gguf", cfg); c == a {
			t.Errorf("%s: different seed, same bytes", wt)
		}
	}
	// A golden hash pins the whole output (vocabulary, layout, generator):
	// if it changes, every file generated earlier changes too, which tests
	// of the binding may depend on. Update it only deliberately.
	cfg := tinyConfig()
	cfg.WeightType = gguf.TypeQ4_0
	if got := fmt.Sprintf("%x", write("g.gguf", cfg)); got != goldenTiny {
		t.Errorf("tiny Q4_0 model sha256 = %s, want %s", got, goldenTiny)
	}
}

const goldenTiny = "678bc76365bb2fda90ebf8bef1b8dfa753849d55329e59496f250d8d92b823ba"

func TestWriteLlamaErrors(t *testing.T) {
	mod := func(f func(*LlamaConfig)) LlamaConfig { c := tinyConfig(); f(&c); return c }
	cases := map[string]LlamaConfig{
		"arch":         mod(func(c *LlamaConfig) { c.Arch = "gpt2" }),
		"no vocab":     mod(func(c *LlamaConfig) { c.Vocab = Vocab{} }),
		"heads":        mod(func(c *LlamaConfig) { c.NHead = 5 }),
		"kv heads":     mod(func(c *LlamaConfig) { c.NHeadKV = 3 }),
		"odd head":     mod(func(c *LlamaConfig) { c.NEmbd, c.NHead = 36, 4 }),
		"no layers":    mod(func(c *LlamaConfig) { c.NLayer = 0 }),
		"quant ff":     mod(func(c *LlamaConfig) { c.WeightType, c.NFF = gguf.TypeQ8_0, 100 }),
		"bad type":     mod(func(c *LlamaConfig) { c.WeightType = gguf.TypeQ4_K }),
		"bad out type": mod(func(c *LlamaConfig) { c.OutputType = gguf.TypeQ5_0 }),
		"neg std":      mod(func(c *LlamaConfig) { c.InitStd = -1 }),
	}
	for name, cfg := range cases {
		dir := t.TempDir()
		if err := WriteLlama(filepath.Join(dir, "m.gguf"), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: left files behind", name)
		}
	}
}

func TestParams100M(t *testing.T) {
	v, err := SPMVocab(BasicWords()).Pad(32000)
	if err != nil {
		t.Fatal(err)
	}
	cfg := LlamaConfig{Vocab: v, NEmbd: 768, NLayer: 12, NHead: 12, NFF: 2048}
	layer := int64(4*768*768 + 3*768*2048 + 2*768)
	want := 2*32000*768 + 12*layer + 768
	if got := cfg.Params(); got != want {
		t.Errorf("Params() = %d, want %d", got, want)
	}
	cfg.TiedOutput = true
	if got := cfg.Params(); got != want-32000*768 {
		t.Errorf("tied Params() = %d", got)
	}
	cfg.NHead = 7
	if got := cfg.Params(); got != 0 {
		t.Errorf("invalid config: Params() = %d, want 0", got)
	}
}

func TestLoRA(t *testing.T) {
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.gguf")
	cfg := tinyConfig()
	cfg.NHeadKV = 2
	if err := WriteLlama(basePath, cfg); err != nil {
		t.Fatal(err)
	}
	base, err := gguf.Read(basePath)
	if err != nil {
		t.Fatal(err)
	}
	if got := AllTargets(base); len(got) != 7*2 || got[0] != "blk.0.attn_q.weight" {
		t.Errorf("AllTargets() = %q", got)
	}
	qv := AllTargets(base, "attn_q", "attn_v")
	if want := []string{"blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.1.attn_q.weight", "blk.1.attn_v.weight"}; !reflect.DeepEqual(qv, want) {
		t.Errorf("AllTargets(q, v) = %q", qv)
	}
	for _, zeroB := range []bool{true, false} {
		path := filepath.Join(dir, "lora.gguf")
		lc := LoRAConfig{Targets: append(qv, "blk.1.ffn_down.weight"), Rank: 4, Alpha: 8, Seed: 7, ZeroB: zeroB}
		if err := WriteLoRA(path, base, lc); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{"general.type": "adapter", "general.architecture": "llama", "adapter.type": "lora", "adapter.lora.alpha": float32(8)} {
			if got, _ := f.Get(k); got != want {
				t.Errorf("%s = %v, want %v", k, got, want)
			}
		}
		if len(f.Tensors) != 2*len(lc.Targets) {
			t.Errorf("%d tensors", len(f.Tensors))
		}
		for _, target := range lc.Targets {
			bt, _ := base.Tensor(target)
			a, okA := f.Tensor(target + ".lora_a")
			b, okB := f.Tensor(target + ".lora_b")
			if !okA || !okB {
				t.Fatalf("%s: lora tensors missing", target)
			}
			// llama-adapter.cpp: model ne0 == a ne0, model ne1 == b ne1, a ne1 == b ne0.
			if !reflect.DeepEqual(a.Shape, []uint64{bt.Shape[0], 4}) || !reflect.DeepEqual(b.Shape, []uint64{4, bt.Shape[1]}) {
				t.Errorf("%s: a %v b %v for base %v", target, a.Shape, b.Shape, bt.Shape)
			}
			var nonzero int
			for _, x := range readTensor(t, f, b.Name) {
				if x != 0 {
					nonzero++
				}
			}
			if zeroB != (nonzero == 0) {
				t.Errorf("%s: ZeroB=%v but %d non-zero B values", target, zeroB, nonzero)
			}
		}
	}
	bad := map[string]LoRAConfig{
		"missing":   {Targets: []string{"blk.9.attn_q.weight"}, Rank: 4},
		"1-D":       {Targets: []string{"blk.0.attn_norm.weight"}, Rank: 4},
		"embd":      {Targets: []string{"token_embd.weight"}, Rank: 4},
		"rank":      {Targets: qv, Rank: 0},
		"no target": {Rank: 4},
		"twice":     {Targets: []string{qv[0], qv[0]}, Rank: 4},
	}
	for name, lc := range bad {
		if err := WriteLoRA(filepath.Join(dir, "bad.gguf"), base, lc); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := WriteLoRA(filepath.Join(dir, "bad.gguf"), nil, LoRAConfig{Rank: 1}); err == nil {
		t.Error("nil base: no error")
	}
}

// TestNormalGen checks the generator's moments.
func TestNormalGen(t *testing.T) {
	g := newNormal(3, "t")
	const n = 200000
	var sum, sq float64
	for i := 0; i < n; i++ {
		x := float64(g.next(2))
		sum += x
		sq += x * x
	}
	mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
	if math.Abs(mean) > 0.02 || math.Abs(std-2) > 0.02 {
		t.Errorf("mean %g std %g, want 0 and 2", mean, std)
	}
}

// BenchmarkWriteLlama100M writes a ~110M-parameter Q8_0 model (vocab 32000,
// 768 hidden, 12 layers, tied output) and reports its size.
func BenchmarkWriteLlama100M(b *testing.B) {
	v, err := SPMVocab(BasicWords()).Pad(32000)
	if err != nil {
		b.Fatal(err)
	}
	cfg := LlamaConfig{Vocab: v, NEmbd: 768, NLayer: 12, NHead: 12, NFF: 2048, TiedOutput: true,
		WeightType: gguf.TypeQ8_0, EmbedType: gguf.TypeQ8_0, Seed: 1}
	path := filepath.Join(b.TempDir(), "m.gguf")
	for i := 0; i < b.N; i++ {
		if err := WriteLlama(path, cfg); err != nil {
			b.Fatal(err)
		}
	}
	st, _ := os.Stat(path)
	b.ReportMetric(float64(cfg.Params())/1e6, "Mparams")
	b.ReportMetric(float64(st.Size())/(1<<20), "MiB")
}
