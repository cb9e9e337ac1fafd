// Package hf reads and writes Hugging Face formats in pure Go and converts
// them to and from the GGUF files llama.cpp runs, e.g. safetensors files,
// model checkpoints (config.json + safetensors shards, ConvertCheckpoint),
// PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) and
// tokenizers (tokenizer.json, tokenizer_config.json) as GGUF vocabulary metadata.
//
// Orientation conventions, which every conversion here depends on:
//   - A Hugging Face nn.Linear weight of torch shape [out, in] is stored row by
//     row, and so is the GGUF tensor of the same matrix, whose ggml shape is
//     [in, out]: the bytes are identical.
//   - A PEFT lora_A has torch shape [r, in] and lora_B [out, r]; llama.cpp's
//     LoRA GGUF stores them unchanged as "<base>.lora_a" (ggml [in, r]) and
//     "<base>.lora_b" (ggml [r, out]), as convert_lora_to_gguf.py does.
//   - llama.cpp's convert_hf_to_gguf.py reorders the output rows of the Q and
//     K projections of llama-style models (LlamaModel.permute) so that RoPE can
//     rotate adjacent pairs. A LoRA delta B·A has its output rows in B, so the
//     same reordering applies to lora_b only; lora_a is untouched.
package hf
