package llama

// #include "train.h"
import "C"

// setSmoothForward makes the training forward compute, where llama_decode's
// op has no backward in ggml (Gemma's GELU, which the CPU reads from an F16
// table, and the soft-caps' tanh), the smooth function whose gradient the
// graph takes, instead of that op's own values. The gradient is the same
// either way; only a finite-difference check needs the forward it is the
// gradient of, since the table's staircase hides it. Tests only: with it on,
// the logits are no longer llama_decode's.
func (t *Trainer) setSmoothForward(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c != nil {
		C.fa_train_set_smooth_forward(t.c, C.bool(on))
	}
}
