package trajectory

import (
	"regexp"
	"strings"
)

// labelRE matches a labelled line: "Thought:", "Action 2:", "observation:".
// Case and the space before the colon vary in model output.
var labelRE = regexp.MustCompile(`^(?i)(thought|action|observation)(?:\s*(\d+))?\s*:\s?(.*)$`)

// optionRE matches a multiple choice option line ("A. text").
var optionRE = regexp.MustCompile(`^[A-D][.)] `)

type field int

const (
	fieldNone field = iota
	fieldThought
	fieldAction
	fieldObservation
)

// partial is a step under construction with the source lines it came from.
type partial struct {
	step   Step
	action string // the action line's content, split at the end
	has    [4]bool
	last   field
	lines  []string
}

// Parse parses a FireAct trajectory body (the text after the question). It never
// fails: text before the first labelled line goes to Prefix, trailing newlines to
// Suffix, unlabelled lines continue the previous field, and any step whose
// canonical rendering differs from its source keeps the source in Verbatim, so
// Render(Parse(s)) == s.
func Parse(s string) Trajectory {
	var t Trajectory
	body := strings.TrimRight(s, "\n")
	t.Suffix = s[len(body):]
	if body == "" {
		t.Prefix = ""
		t.Suffix = s
		return t
	}
	lines := strings.Split(body, "\n")

	var prefix []string
	var steps []*partial
	var cur *partial
	numberedSet := false
	for _, line := range lines {
		m := labelRE.FindStringSubmatch(line)
		if m == nil {
			if cur == nil {
				prefix = append(prefix, line)
				continue
			}
			cur.lines = append(cur.lines, line)
			cur.appendContinuation(line)
			continue
		}
		f := kindField(m[1])
		if !numberedSet {
			t.Numbered = m[2] != ""
			numberedSet = true
		}
		if cur == nil || cur.startsNew(f) {
			cur = &partial{}
			steps = append(steps, cur)
		}
		cur.lines = append(cur.lines, line)
		cur.set(f, m[3])
	}

	// A step that starts with an action after unlabelled text: that text is the
	// thought with its "Thought:" label missing (small models often drop it).
	// Options of a multiple choice question are not a thought.
	if len(steps) > 0 && !steps[0].has[fieldThought] && len(prefix) > 0 && !allOptions(prefix) {
		st := steps[0]
		st.step.Thought = strings.Join(prefix, "\n")
		st.has[fieldThought] = true
		st.lines = append(append([]string{}, prefix...), st.lines...)
		prefix = nil
	}
	if len(prefix) > 0 {
		t.Prefix = strings.Join(prefix, "\n") + "\n"
	}

	for i, p := range steps {
		p.finish()
		n := 0
		if t.Numbered {
			n = i + 1
		}
		src := strings.Join(p.lines, "\n")
		if RenderStep(p.step, n) != src {
			p.step.Verbatim = src
		}
		t.Steps = append(t.Steps, p.step)
	}
	if len(prefix) > 0 && len(steps) == 0 {
		// No labelled line at all (IO prompting, a bare answer): keep it all as
		// prefix so the text survives; there are no steps to report.
		t.Prefix = body
	}
	t.Answer, t.Reward = outcome(t.Steps)
	return t
}

// outcome returns the last finish argument and the reward of the last
// observation that reports one.
func outcome(steps []Step) (answer string, reward float64) {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].IsFinish() {
			answer = steps[i].Argument
			break
		}
	}
	for i := len(steps) - 1; i >= 0; i-- {
		if r, ok := ParseReward(steps[i].Observation); ok {
			reward = r
			break
		}
	}
	return answer, reward
}

func kindField(kind string) field {
	switch strings.ToLower(kind) {
	case "thought":
		return fieldThought
	case "action":
		return fieldAction
	default:
		return fieldObservation
	}
}

// startsNew reports whether a line of kind f begins a new step: steps run
// thought → action → observation, so a field that is already set, or one that
// comes back in the cycle, starts the next step.
func (p *partial) startsNew(f field) bool {
	switch f {
	case fieldThought:
		return p.has[fieldThought] || p.has[fieldAction] || p.has[fieldObservation]
	case fieldAction:
		return p.has[fieldAction] || p.has[fieldObservation]
	default:
		return p.has[fieldObservation]
	}
}

func (p *partial) set(f field, content string) {
	p.has[f] = true
	p.last = f
	switch f {
	case fieldThought:
		p.step.Thought = content
	case fieldAction:
		p.action = content
	case fieldObservation:
		p.step.Observation = content
	}
}

func (p *partial) appendContinuation(line string) {
	switch p.last {
	case fieldThought:
		p.step.Thought += "\n" + line
	case fieldAction:
		p.action += "\n" + line
	case fieldObservation:
		p.step.Observation += "\n" + line
	}
}

// finish splits the action into name and argument and the thought into an
// injected reflection and the model's thought.
func (p *partial) finish() {
	if p.has[fieldAction] {
		p.step.Action, p.step.Argument = SplitAction(p.action)
	}
	if p.has[fieldThought] {
		if i := strings.Index(p.step.Thought, " Thought: "); i >= 0 {
			p.step.Reflection = p.step.Thought[:i]
			p.step.Thought = p.step.Thought[i+len(" Thought: "):]
		}
	}
}

// SplitAction splits an action text "name[argument]" into its parts, tolerating
// a missing closing bracket ("search[x"), no brackets ("finish") and spaces
// ("Search [x]"). The argument runs from the first "[" to the last "]".
func SplitAction(s string) (name, arg string) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '[')
	if open < 0 {
		return s, ""
	}
	name = strings.TrimSpace(s[:open])
	rest := s[open+1:]
	if close := strings.LastIndexByte(rest, ']'); close >= 0 {
		return name, rest[:close]
	}
	return name, rest
}

func allOptions(lines []string) bool {
	for _, l := range lines {
		if !optionRE.MatchString(l) {
			return false
		}
	}
	return true
}
