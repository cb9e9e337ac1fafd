package trajectory

import (
	"strings"
	"unicode"
)

// AlpacaPrompt is the prompt of FireAct's alpaca fine-tuning format for a
// question (alpaca-lora's "prompt_no_input" template, which FireAct trained its
// Llama students with): the trajectory text follows it as the response. It lives
// here, beside Render, because finetune builds training text with it and the
// agent prompts fine-tuned students with it: one template, so they cannot drift.
//
// The instruction is right-stripped as Python's str.rstrip() strips it:
// FireAct's generation.py prompts alpaca students with prepare_prompt(q.rstrip()).
// Training text is stripped the same way (FireAct's released files keep the
// trailing spaces of some questions, which its own evaluation never shows), so
// a student is always prompted with the prefix of what it was trained on.
func AlpacaPrompt(instruction string) string {
	return "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
		strings.TrimRightFunc(instruction, isPySpace) + "\n\n### Response:\n"
}

// isPySpace is Python's str.isspace for one character: Unicode white space plus
// the ASCII information separators U+001C..U+001F, which Python also strips.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
