package llama

import (
	"strings"
	"testing"
)

// TestParseTrainerEnums checks the optimizer and backward names the CLI and
// finetune hand to the trainer: case-insensitive, "" the default, anything
// else an error naming the valid set.
func TestParseTrainerEnums(t *testing.T) {
	opts := []struct {
		in   string
		want Optimizer
		ok   bool
	}{{"", OptimizerAdamW, true}, {"adamw", OptimizerAdamW, true}, {"SGD", OptimizerSGD, true}, {"adam", "", false}}
	for _, c := range opts {
		got, err := ParseOptimizer(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("ParseOptimizer(%q) = %q, %v; want %q, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	backs := []struct {
		in   string
		want Backward
		ok   bool
	}{{"", BackwardTransient, true}, {"transient", BackwardTransient, true}, {"Transposed", BackwardTransposed, true},
		{"transposed-q8", BackwardTransposedQ8, true}, {"outprod", BackwardOutProd, true}, {"q8", "", false}}
	for _, c := range backs {
		got, err := ParseBackward(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("ParseBackward(%q) = %q, %v; want %q, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestTargetsOf(t *testing.T) {
	got, err := TargetsOf([]string{"blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.0.attn_output.weight", "blk.3.ffn_down.weight", "output.weight"})
	if err != nil || got != TargetQ|TargetO|TargetDown|TargetOutput {
		t.Fatalf("TargetsOf: %v (%v)", got, err)
	}
	if _, err := TargetsOf([]string{"token_embd.weight"}); err == nil || !strings.Contains(err.Error(), "token_embd.weight") {
		t.Errorf("an embedding target: %v, want a refusal naming it", err)
	}
}
