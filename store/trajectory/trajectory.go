// Package trajectory defines the agent trajectory shared by the agent (which writes
// and prompts with trajectories) and finetune (which trains on them), and the one
// parser and renderer of FireAct's trajectory text:
//
//	Thought: I need to search X.
//	Action: search[X]
//	Observation: X is ...
//	Thought: So the answer is Y.
//	Action: finish[Y]
//	Observation: Episode finished, reward = True
//
// Both sides render text with Render, so training text and prompt text cannot drift
// apart. Parse is lossless: Render(Parse(s)) == s for every input, including the
// irregular rows of FireAct's released data; irregular steps keep their source text
// in Step.Verbatim.
//
// The package is a leaf: it imports only the standard library.
package trajectory

import (
	"strconv"
	"strings"
)

// Method names of the prompting methods that produced a trajectory.
const (
	MethodReAct     = "react"
	MethodCoT       = "cot"
	MethodReflexion = "reflexion"
	MethodIO        = "io"
)

// Trajectory is one attempt at one question: the steps an agent took and their
// outcome.
type Trajectory struct {
	// Question is the question text as shown to the agent (for multiple choice
	// questions it includes the options).
	Question string `json:"question"`
	// Prefix is text in the trajectory body before the first step (for example
	// answer options that a data file placed in the output); usually empty. When
	// non-empty it includes its trailing newline.
	Prefix string `json:"prefix,omitempty"`
	// Steps are the thought/action/observation steps in order.
	Steps []Step `json:"steps"`
	// Suffix is text after the last step, normally "\n" or "".
	Suffix string `json:"suffix,omitempty"`
	// Numbered makes Render write "Thought 1:", "Action 1:", ... labels, the form
	// of FireAct's few-shot ReAct prompts.
	Numbered bool `json:"numbered,omitempty"`
	// Layout is the chat message layout of a source chat row whose messages did
	// not split the way the chat renderers split them (see finetune/dataformat);
	// "" means canonical. Only chat renderers read it.
	Layout string `json:"layout,omitempty"`
	// Answer is the argument of the last finish action ("" when none).
	Answer string `json:"answer"`
	// Reward is the reward of the final "Episode finished, reward = X" observation
	// (True and 1 read as 1, False and 0 as 0).
	Reward float64 `json:"reward"`
	// Method is the prompting method (MethodReAct, ...), when known.
	Method string `json:"method,omitempty"`
	// Task is the task name (hotpotqa, strategyqa, mmlu, ...), when known.
	Task string `json:"task,omitempty"`
}

// Step is one thought/action/observation turn.
type Step struct {
	// Reflection is text a harness injected into the thought line before the
	// model's own thought, such as Reflexion's "Now that I haven't solved the
	// task within 5 steps, let me do a reflection ..." or a step-limit warning.
	// It renders as "Thought: <Reflection> Thought: <Thought>".
	Reflection string `json:"reflection,omitempty"`
	// Thought is the model's reasoning for this step.
	Thought string `json:"thought,omitempty"`
	// Action is the tool name as written ("search", "finish", "Search").
	Action string `json:"action,omitempty"`
	// Argument is the text inside the action's brackets.
	Argument string `json:"argument,omitempty"`
	// Observation is the tool's answer (or the environment's final message).
	Observation string `json:"observation,omitempty"`
	// Raw is the model's raw generated text for this step when the trajectory
	// came from a model run; rendering ignores it.
	Raw string `json:"raw,omitempty"`
	// Verbatim, when non-empty, is the exact source text of this step (without a
	// trailing newline) and Render writes it instead of the canonical form. Parse
	// sets it only when the canonical form would differ from the source, so the
	// parsed fields stay usable while the round trip stays exact.
	Verbatim string `json:"verbatim,omitempty"`
}

// IsFinish reports whether the step's action is the finish action.
func (s Step) IsFinish() bool { return strings.EqualFold(s.Action, "finish") }

// Searches returns the number of non-finish actions (tool calls) in t.
func (t Trajectory) Searches() int {
	n := 0
	for _, s := range t.Steps {
		if s.Action != "" && !s.IsFinish() {
			n++
		}
	}
	return n
}

// HasReflection reports whether any step carries injected reflection text.
func (t Trajectory) HasReflection() bool {
	for _, s := range t.Steps {
		if s.Reflection != "" {
			return true
		}
	}
	return false
}

// Render returns the trajectory body text (Prefix, steps, Suffix), without the
// question.
func Render(t Trajectory) string {
	var b strings.Builder
	b.WriteString(t.Prefix)
	for i, s := range t.Steps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(RenderStep(s, stepNumber(t, i)))
	}
	b.WriteString(t.Suffix)
	return b.String()
}

// stepNumber is the label number for step i: 0 (no number) unless t.Numbered.
func stepNumber(t Trajectory, i int) int {
	if t.Numbered {
		return i + 1
	}
	return 0
}

// RenderStep renders one step without a trailing newline; n > 0 numbers the
// labels ("Thought 3:"). A step with Verbatim renders as Verbatim.
func RenderStep(s Step, n int) string {
	if s.Verbatim != "" {
		return s.Verbatim
	}
	return strings.Join(stepLines(s, n, true, true), "\n")
}

// RenderAgentPart renders the model-written part of a step (thought and action
// lines), as an assistant chat message or a generation target holds it.
func RenderAgentPart(s Step, n int) string {
	return strings.Join(stepLines(s, n, true, false), "\n")
}

// RenderObservation renders the observation line of a step ("" when none).
func RenderObservation(s Step, n int) string {
	return strings.Join(stepLines(s, n, false, true), "\n")
}

func stepLines(s Step, n int, agent, obs bool) []string {
	var lines []string
	if agent {
		if s.Reflection != "" {
			lines = append(lines, label("Thought", n)+s.Reflection+" Thought: "+s.Thought)
		} else if s.Thought != "" {
			lines = append(lines, label("Thought", n)+s.Thought)
		}
		if s.Action != "" || s.Argument != "" {
			lines = append(lines, label("Action", n)+s.Action+"["+s.Argument+"]")
		}
	}
	if obs && s.Observation != "" {
		lines = append(lines, label("Observation", n)+s.Observation)
	}
	return lines
}

func label(kind string, n int) string {
	if n > 0 {
		return kind + " " + strconv.Itoa(n) + ": "
	}
	return kind + ": "
}

// ParseReward reads the reward from an observation such as "Episode finished,
// reward = True" (FireAct writes True/False for HotpotQA, 1/0 for others, and
// sometimes a trailing period). ok is false when the text carries no reward.
func ParseReward(obs string) (reward float64, ok bool) {
	i := strings.LastIndex(obs, "reward =")
	if i < 0 {
		return 0, false
	}
	v := strings.TrimSpace(obs[i+len("reward ="):])
	v = strings.TrimSuffix(v, ".")
	switch strings.ToLower(v) {
	case "true":
		return 1, true
	case "false":
		return 0, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, false
	}
	return f, true
}
