package modelgen

// SmolLM3NoRopeInterval is the NoPE period of SmolLM3: every fourth layer
// (layers 3, 7, 11, ... counting from 0) attends without RoPE. llama.cpp
// reads no key for it (llama-model.cpp sets n_no_rope_layer_step = 4 for
// arch smollm3), so the GGUF carries no NoPE metadata and a model made here
// with Arch "smollm3" needs NLayer >= 4 to have a NoPE layer at all.
const SmolLM3NoRopeInterval = 4

// SmolLM3UsesRope reports whether layer il of a smollm3 model applies RoPE,
// by llama.cpp's rule (smollm3.cpp: (il + 1) % n_no_rope_layer_step != 0).
// It is also Hugging Face's default no_rope_layers entry (1 = RoPE) for
// no_rope_layer_interval 4.
func SmolLM3UsesRope(il int) bool {
	return (il+1)%SmolLM3NoRopeInterval != 0
}

// SmolLM3NoRopeLayers returns config.json's no_rope_layers for n layers as
// transformers writes it: 1 where the layer uses RoPE, 0 on a NoPE layer.
func SmolLM3NoRopeLayers(n int) []int {
	out := make([]int, n)
	for i := range out {
		if SmolLM3UsesRope(i) {
			out[i] = 1
		}
	}
	return out
}
