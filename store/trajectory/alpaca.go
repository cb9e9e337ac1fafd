package trajectory

// AlpacaPrompt is the prompt of FireAct's alpaca fine-tuning format for a
// question (alpaca-lora's "prompt_no_input" template, which FireAct trained its
// Llama students with): the trajectory text follows it as the response. It lives
// here, beside Render, because finetune builds training text with it and the
// agent prompts fine-tuned students with it: one template, so they cannot drift.
func AlpacaPrompt(instruction string) string {
	return "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
		instruction + "\n\n### Response:\n"
}
