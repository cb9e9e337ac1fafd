package hf

import (
	"encoding/json"
	"fmt"
)

// smolLM3NoRopeInterval is llama.cpp's NoPE period for arch smollm3: it
// reads no key for it (llama-model.cpp sets n_no_rope_layer_step = 4) and
// skips RoPE on layer il when (il+1) % 4 == 0. convert_hf_to_gguf.py
// (SmolLM3Model, a LlamaModel) writes nothing about NoPE either, so a
// checkpoint with another layer set would convert into a different model.
const smolLM3NoRopeInterval = 4

// checkSmolLM3Config refuses a SmolLM3ForCausalLM config.json whose NoPE
// layers or attention llama.cpp's smollm3 would not reproduce:
// no_rope_layers (1 = the layer uses RoPE, as transformers reads it) must
// be llama.cpp's fixed pattern, or, without it, no_rope_layer_interval
// (transformers' default 4) must be 4; sliding-window attention must be off.
func checkSmolLM3Config(c *CheckpointConfig, b []byte) error {
	var raw struct {
		NoRopeLayers     []int `json:"no_rope_layers"`
		NoRopeInterval   *int  `json:"no_rope_layer_interval"`
		UseSlidingWindow *bool `json:"use_sliding_window"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("hf: %s: %w", c.Path, err)
	}
	if raw.UseSlidingWindow != nil && *raw.UseSlidingWindow {
		return fmt.Errorf("hf: %s: use_sliding_window is true; llama.cpp's smollm3 has no sliding-window attention", c.Path)
	}
	if raw.NoRopeLayers == nil {
		if raw.NoRopeInterval != nil && *raw.NoRopeInterval != smolLM3NoRopeInterval {
			return fmt.Errorf("hf: %s: no_rope_layer_interval is %d; llama.cpp's smollm3 skips RoPE on every %dth layer only",
				c.Path, *raw.NoRopeInterval, smolLM3NoRopeInterval)
		}
		return nil
	}
	if len(raw.NoRopeLayers) < c.NumLayers {
		return fmt.Errorf("hf: %s: no_rope_layers has %d entries for %d layers", c.Path, len(raw.NoRopeLayers), c.NumLayers)
	}
	for il := 0; il < c.NumLayers; il++ {
		want := 1
		if (il+1)%smolLM3NoRopeInterval == 0 {
			want = 0
		}
		if raw.NoRopeLayers[il] != want {
			return fmt.Errorf("hf: %s: no_rope_layers[%d] is %d, but llama.cpp's smollm3 gives layer %d %s (RoPE on every layer but each %dth)",
				c.Path, il, raw.NoRopeLayers[il], il, map[int]string{0: "no RoPE", 1: "RoPE"}[want], smolLM3NoRopeInterval)
		}
	}
	return nil
}
