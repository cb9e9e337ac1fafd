package hf

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadPEFTConfig feeds arbitrary adapter_config.json bytes, seeded with
// the shapes HF PEFT, unsloth and axolotl write: a config is accepted only with
// r > 0 and a positive alpha, and nothing panics.
func FuzzReadPEFTConfig(f *testing.F) {
	f.Add([]byte(`{"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "meta-llama/Llama-2-7b-hf",
		"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": false,
		"target_modules": ["q_proj", "v_proj"], "inference_mode": true}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": true,
		"target_modules": ".*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)", "rank_pattern": {"q_proj": 4}}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 0, "lora_alpha": 1e400}`))
	f.Add([]byte(`{"peft_type": "PREFIX_TUNING"}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, PEFTConfigFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := ReadPEFTConfig(dir)
		if err != nil {
			return
		}
		if c.R <= 0 || !(c.LoRAAlpha > 0) || c.PEFTType != "LORA" {
			t.Fatalf("accepted an unusable config %+v", c)
		}
	})
}
