package finetune

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/fireact/fireact/chattmpl/llamachat"
	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store/trajectory"
)

// Template selects how a trajectory becomes training text.
type Template string

// Templates.
const (
	// TemplateAlpaca is FireAct's format: the Stanford-Alpaca prompt with the bare
	// question as the instruction and the trajectory text as the response, the
	// same text the agent prompts a fine-tuned student with (trajectory.AlpacaPrompt).
	TemplateAlpaca Template = "alpaca"
	// TemplateChat renders the trajectory as chat messages (question as the user's
	// message, each step's thought and action as an assistant message, each
	// observation as a user message: dataformat.ChatMessages, the layout the agent's
	// chat format prompts with) through the model's chat template.
	TemplateChat Template = "chat"
)

// ParseTemplate checks a template name.
func ParseTemplate(s string) (Template, error) {
	switch t := Template(strings.ToLower(s)); t {
	case TemplateAlpaca, TemplateChat:
		return t, nil
	case "":
		return TemplateAlpaca, nil
	}
	return "", fmt.Errorf("finetune: unknown template %q (want alpaca or chat)", s)
}

// Segment is a piece of rendered training text.
type Segment struct {
	Text string
	// Scored marks text the agent wrote: its tokens are training targets unless
	// the example trains on inputs.
	Scored bool
	// Special marks template text whose special-token markup ("<|im_start|>")
	// must be tokenized as special tokens; trajectory text never is, so a question
	// cannot smuggle control tokens in.
	Special bool
}

// Segments renders a trajectory into training text for tmpl, split into scored
// (agent-written) and unscored pieces. m is needed only for TemplateChat (its chat
// template, rendered as Hugging Face renders it, or chatTmpl when not empty: a
// Jinja template text or a llama.cpp built-in name such as "chatml"; see
// llamachat.New).
//
// What the agent wrote, and so what is scored: each step's thought and action
// lines with their labels, and the hand-over to the environment that ends them
// (the newline and the "Observation:" label, because the agent's stop string is
// "\nObservation:" and a model never trained to write it would run on into
// another thought). Not scored: the template, the question, text before the first
// step (MMLU options some files put there), a reflection the harness injected
// into a thought, and the observations themselves. A trajectory with no
// labelled steps (IO prompting) is all answer, so all of it is scored.
func Segments(t trajectory.Trajectory, tmpl Template, m *llama.Model, chatTmpl string) ([]Segment, error) {
	switch tmpl {
	case TemplateAlpaca, "":
		segs := []Segment{{Text: trajectory.AlpacaPrompt(t.Question)}}
		body := BodySegments(t)
		if got, want := joinSegments(body), trajectory.Render(t); got != want {
			// A bug here would silently train on text the agent never sees.
			return nil, fmt.Errorf("finetune: segments of the trajectory do not render as trajectory.Render (%q vs %q)", got, want)
		}
		return append(segs, body...), nil
	case TemplateChat:
		if m == nil {
			return nil, fmt.Errorf("finetune: the chat template needs a model")
		}
		return chatSegments(t, m, chatTmpl)
	}
	return nil, fmt.Errorf("finetune: unknown template %q", tmpl)
}

// BodySegments splits the trajectory body (trajectory.Render's text) into scored
// and unscored segments; see Segments for what is scored.
func BodySegments(t trajectory.Trajectory) []Segment {
	if len(t.Steps) == 0 {
		return []Segment{{Text: t.Prefix, Scored: true}, {Text: t.Suffix}}
	}
	var b segBuilder
	b.add(t.Prefix, false)
	for i, s := range t.Steps {
		if i > 0 {
			// The newline after an observation is the prompt's, not the agent's.
			b.add("\n", false)
		}
		n := 0
		if t.Numbered {
			n = i + 1
		}
		if s.Verbatim != "" {
			verbatimSegments(&b, s.Verbatim)
			continue
		}
		agent := trajectory.RenderAgentPart(s, n)
		if s.Reflection != "" {
			harness := label("Thought", n) + s.Reflection + " Thought:"
			b.add(harness, false)
			b.add(strings.TrimPrefix(agent, harness), true)
		} else {
			b.add(agent, true)
		}
		if obs := trajectory.RenderObservation(s, n); obs != "" {
			if agent != "" {
				b.add("\n", true)
			}
			l := strings.TrimSuffix(label("Observation", n), " ")
			b.add(l, agent != "")
			b.add(strings.TrimPrefix(obs, l), false)
		}
	}
	b.add(t.Suffix, false)
	return b.segs
}

func label(kind string, n int) string {
	if n > 0 {
		return fmt.Sprintf("%s %d: ", kind, n)
	}
	return kind + ": "
}

// labelRE matches a labelled line the way trajectory.Parse does.
var labelRE = regexp.MustCompile(`^(?i)(thought|action|observation)(?:\s*\d+)?\s*:`)

// verbatimSegments splits an irregular step's source text line by line: thought
// and action lines (and unlabelled lines after them, or before any label, which
// Parse reads as a thought missing its label) are the agent's; observation lines
// and their continuation lines are not, except the label.
func verbatimSegments(b *segBuilder, v string) {
	agent := true
	for i, line := range strings.Split(v, "\n") {
		m := labelRE.FindStringSubmatch(line)
		isObsLabel := m != nil && strings.EqualFold(m[1], "observation")
		if m != nil {
			agent = !isObsLabel
		}
		if i > 0 {
			b.add("\n", agent || isObsLabel)
		}
		switch {
		case isObsLabel:
			b.add(m[0], true)
			b.add(line[len(m[0]):], false)
		case agent && m != nil && strings.EqualFold(m[1], "thought"):
			// "Thought: <reflection> Thought: <thought>": the harness's reflection.
			if j := strings.Index(line, " Thought: "); j >= 0 {
				b.add(line[:j+len(" Thought:")], false)
				b.add(line[j+len(" Thought:"):], true)
			} else {
				b.add(line, true)
			}
		default:
			b.add(line, agent)
		}
	}
}

// segBuilder appends segments, merging neighbours of the same kind.
type segBuilder struct{ segs []Segment }

func (b *segBuilder) add(text string, scored bool) {
	if text == "" {
		return
	}
	if n := len(b.segs); n > 0 && b.segs[n-1].Scored == scored && !b.segs[n-1].Special {
		b.segs[n-1].Text += text
		return
	}
	b.segs = append(b.segs, Segment{Text: text, Scored: scored})
}

func joinSegments(segs []Segment) string {
	var sb strings.Builder
	for _, s := range segs {
		sb.WriteString(s.Text)
	}
	return sb.String()
}

// chatSegments renders the chat messages through the chat template and finds each
// assistant message in the text by rendering the conversation up to it: the
// template's text before the message is the prompt, the message is scored, and so
// is the template's end of turn after it (up to trailing white space), which is
// what ends a chat turn at inference (often the end-of-generation token), and
// any template text between the generation prompt and the message (Qwen3's empty
// "<think>\n\n</think>\n\n" of the last turn), which the model writes too.
//
// Most templates render incrementally: the conversation up to a message is a
// prefix of the whole. Qwen3's is not: it drops the reasoning block of every
// assistant turn before the last question, so a turn rendered last differs
// from the same turn in the whole text; there the message and its end of turn
// are looked up in the whole text after the previous turn. The training text
// is always the whole conversation as the template renders it.
func chatSegments(t trajectory.Trajectory, m *llama.Model, tmpl string) ([]Segment, error) {
	dm := dataformat.ChatMessages(t)
	msgs := make([]llama.ChatMessage, len(dm))
	for i, x := range dm {
		msgs[i] = llama.ChatMessage{Role: x.Role, Content: x.Content}
	}
	r, err := llamachat.New(m, tmpl)
	if err != nil {
		return nil, fmt.Errorf("finetune: chat template: %w", err)
	}
	full, err := r.Render(msgs, false)
	if err != nil {
		return nil, fmt.Errorf("finetune: chat template: %w", err)
	}
	var segs []Segment
	pos := 0 // bytes of full already segmented
	for k, msg := range msgs {
		if msg.Role != "assistant" {
			continue
		}
		pre, err := r.Render(msgs[:k], true)
		if err != nil {
			return nil, fmt.Errorf("finetune: chat template: %w", err)
		}
		through, err := r.Render(msgs[:k+1], false)
		if err != nil {
			return nil, fmt.Errorf("finetune: chat template: %w", err)
		}
		if !strings.HasPrefix(through, pre) {
			return nil, fmt.Errorf("finetune: the chat template's generation prompt does not start the assistant's turn; use the alpaca template")
		}
		// Templates may trim the content; find what they kept.
		content := strings.TrimSpace(msg.Content)
		j := strings.Index(through[len(pre):], content)
		if j < 0 {
			return nil, fmt.Errorf("finetune: the chat template changes message text; use the alpaca template")
		}
		open := through[len(pre) : len(pre)+j]
		closing := strings.TrimRight(through[len(pre)+j+len(content):], " \n\r\t")
		var start int
		if strings.HasPrefix(full, through) {
			start = len(pre) + j
		} else {
			i := strings.Index(full[pos:], content+closing)
			if i < 0 {
				return nil, fmt.Errorf("finetune: the chat template renders assistant message %d differently in the whole conversation; use the alpaca template", k)
			}
			start = pos + i
			if !strings.HasSuffix(full[:start], open) {
				open = ""
			}
		}
		if start-len(open) < pos {
			return nil, fmt.Errorf("finetune: the chat template does not render conversations incrementally; use the alpaca template")
		}
		end := start + len(content)
		turnEnd := end + len(closing)
		segs = append(segs, Segment{Text: full[pos : start-len(open)], Special: true})
		segs = append(segs, Segment{Text: open, Scored: true, Special: true})
		// A harness reflection injected at the start of the thought is not the
		// agent's (the step's rendered thought is "Thought: <reflection> Thought: ...").
		if i := strings.Index(content, " Thought: "); i >= 0 && strings.HasPrefix(content, "Thought: ") && hasReflection(t, content) {
			segs = append(segs, Segment{Text: content[:i+len(" Thought:")]})
			segs = append(segs, Segment{Text: content[i+len(" Thought:"):], Scored: true})
		} else {
			segs = append(segs, Segment{Text: content, Scored: true})
		}
		segs = append(segs, Segment{Text: full[end:turnEnd], Scored: true, Special: true})
		pos = turnEnd
	}
	segs = append(segs, Segment{Text: full[pos:], Special: true})
	out := segs[:0]
	for _, s := range segs {
		if s.Text != "" {
			out = append(out, s)
		}
	}
	if joinSegments(out) != full {
		// A bug here would silently train on text the template never renders.
		return nil, fmt.Errorf("finetune: chat segments do not spell the template's rendering")
	}
	return out, nil
}

// hasReflection reports whether an assistant message starts with one of t's
// injected reflections.
func hasReflection(t trajectory.Trajectory, content string) bool {
	for _, s := range t.Steps {
		if s.Reflection != "" && strings.Contains(content, s.Reflection+" Thought: ") {
			return true
		}
	}
	return false
}
