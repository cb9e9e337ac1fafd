package trajectory

import "testing"

// TestAlpacaPrompt checks the template against generation.py's prepare_prompt,
// which FireAct applies to q.rstrip(): the expected strings are Python's.
func TestAlpacaPrompt(t *testing.T) {
	const head = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n"
	tests := []struct{ in, question string }{
		{"Who wrote Hamlet?", "Who wrote Hamlet?"},
		// A question of FireAct's released multitask.json, with its trailing space.
		{"Which faith is designated to the University of Providence, private university accredited by the NW association of Schools and Colleges and located in a third largest city in Montana after being passed by Missoula? ",
			"Which faith is designated to the University of Providence, private university accredited by the NW association of Schools and Colleges and located in a third largest city in Montana after being passed by Missoula?"},
		// str.rstrip() strips Unicode white space and the ASCII separators.
		{"a\x1c\u0085\u00a0\u3000 \t\n", "a"},
		{" Leading stays", " Leading stays"},
	}
	for _, tc := range tests {
		want := head + tc.question + "\n\n### Response:\n"
		if got := AlpacaPrompt(tc.in); got != want {
			t.Errorf("AlpacaPrompt(%q) = %q, want %q", tc.in, got, want)
		}
	}
}
