package trajectory

import "testing"

func TestAlpacaPrompt(t *testing.T) {
	got := AlpacaPrompt("Who wrote Hamlet?")
	want := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWho wrote Hamlet?\n\n### Response:\n"
	if got != want {
		t.Fatalf("AlpacaPrompt = %q, want %q", got, want)
	}
}
