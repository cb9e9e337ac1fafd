package agent

import (
	"fmt"
	"os"
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// Format is how an episode is turned into model input.
type Format string

// Prompt formats.
const (
	// FormatFewShot is the prompting baselines' format: instructions and worked
	// examples, then the question and the trajectory so far.
	FormatFewShot Format = "fewshot"
	// FormatAlpaca is what FireAct fine-tunes on: the bare question as the
	// alpaca instruction and the trajectory as the response, so a fine-tuned
	// student is prompted exactly like its training text.
	FormatAlpaca Format = "alpaca"
	// FormatChat is OpenAI-style messages: the question as the user's message,
	// then per step the thought and action as the assistant's message and the
	// observation as the user's, exactly finetune's chat layout of a
	// trajectory (dataformat.ChatMessages). No few-shot prompt and no system
	// message: the chat training layout has none, and FireAct evaluates its
	// fine-tuned GPT with the question alone (generation.py --chatgpt_format).
	FormatChat Format = "chat"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatFewShot, FormatAlpaca, FormatChat:
		return f, nil
	}
	return "", fmt.Errorf("agent: unknown prompt format %q (want fewshot, alpaca or chat)", s)
}

// Prompt builds the model input of each turn.
type Prompt struct {
	Format Format
	// FewShot is the text before the question in the few-shot format:
	// instructions and examples, ending with a blank line. FewShotPrompt gives
	// the built-in one; LoadPromptFile reads one of FireAct's prompt files.
	// The alpaca and chat formats, which prompt fine-tuned students as they
	// were trained, do not use it.
	FewShot string
}

// LoadPromptFile reads a few-shot prompt file (such as FireAct's
// prompts/react_hotpotqa_google.txt) to use verbatim before the question.
func LoadPromptFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("agent: read prompt file: %w", err)
	}
	return string(b), nil
}

// turnInput is what the agent asks the model for one turn.
type turnInput struct {
	question   string
	steps      []trajectory.Step
	reflection string
	// reaskThought is set on the re-ask of a turn whose text did not parse: the
	// prompt then ends with that thought and "Action:".
	reaskThought *string
}

// opening is the text the prompt ends with, which the model continues.
func opening(m Method, in turnInput) string {
	if m.AnswerOnly {
		return "Answer:"
	}
	s := "Thought:"
	if in.reflection != "" {
		s += " " + in.reflection + " Thought:"
	}
	if in.reaskThought != nil {
		if *in.reaskThought != "" {
			s += " " + *in.reaskThought
		}
		s += "\nAction:"
	}
	return s
}

// stops are the stop strings of a turn: the model must not write the
// observation itself, nor run on into another example.
func stops(m Method, reask bool) []string {
	if m.AnswerOnly || reask {
		return []string{"\n"}
	}
	return []string{"\nObservation:", "\n\n"}
}

// build returns the prompt text (fewshot, alpaca) or messages (chat).
func (p Prompt) build(m Method, in turnInput) (string, []Message) {
	open := opening(m, in)
	if p.Format == FormatChat {
		return "", p.messages(in)
	}
	body := trajectory.Render(trajectory.Trajectory{Steps: in.steps})
	if len(in.steps) > 0 {
		body += "\n"
	}
	if p.Format == FormatAlpaca {
		return trajectory.AlpacaPrompt(in.question) + body + open, nil
	}
	return p.FewShot + in.question + "\n" + body + open, nil
}

// messages lays an episode out as chat messages, as the chat training layout
// does, so that every turn's conversation is the start of a training
// conversation. The model writes its own "Thought:" label in chat, so a harness
// reflection travels in the last user message, and a re-ask shows the parsed
// thought and asks for the action line (neither has a place in training text,
// which an API without assistant prefill cannot continue).
func (p Prompt) messages(in turnInput) []Message {
	msgs := []Message{{Role: "user", Content: in.question}}
	for _, s := range in.steps {
		msgs = append(msgs, Message{Role: "assistant", Content: trajectory.RenderAgentPart(s, 0)})
		if o := trajectory.RenderObservation(s, 0); o != "" {
			msgs = append(msgs, Message{Role: "user", Content: o})
		}
	}
	if in.reflection != "" {
		last := &msgs[len(msgs)-1]
		last.Content += "\nThought: " + in.reflection
	}
	if in.reaskThought != nil {
		msgs = append(msgs,
			Message{Role: "assistant", Content: "Thought: " + *in.reaskThought},
			Message{Role: "user", Content: "Give the action for this thought on one line: search[query] or finish[answer]."})
	}
	return msgs
}
