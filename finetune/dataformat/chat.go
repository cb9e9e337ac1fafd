package dataformat

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"` // "user" or "assistant"
	Content string `json:"content"`
}

// ChatMessages renders a trajectory as chat messages: the question as the
// user's message, then per step the thought and action as the assistant's
// message and the observation as the user's. A trajectory imported from an
// irregular chat row (t.Layout set) gets that row's messages back exactly.
func ChatMessages(t trajectory.Trajectory) []Message {
	if t.Layout != "" {
		if ms, ok := layoutMessages(t); ok {
			return ms
		}
	}
	ms := []Message{{Role: "user", Content: t.Question}}
	prefix := strings.TrimSuffix(t.Prefix, "\n")
	for i, s := range t.Steps {
		n := 0
		if t.Numbered {
			n = i + 1
		}
		agent, obs := trajectory.RenderAgentPart(s, n), trajectory.RenderObservation(s, n)
		if s.Verbatim != "" {
			agent, obs = s.Verbatim, ""
		}
		if prefix != "" {
			agent = strings.TrimPrefix(prefix+"\n"+agent, "\n")
			prefix = ""
		}
		if agent != "" {
			ms = append(ms, Message{Role: "assistant", Content: agent})
		}
		if obs != "" {
			ms = append(ms, Message{Role: "user", Content: obs})
		}
	}
	return ms
}

// The layout of an irregular chat row: optional "merged" (the question is the
// first line of the first, assistant, message), then one token per body
// message: its role letter (a/u) and its number of lines.
const layoutMerged = "merged"

// chatRow turns a chat row's messages into a trajectory, recording a layout
// when the canonical rendering would not give the same messages back.
func chatRow(ms []Message) (trajectory.Trajectory, error) {
	if len(ms) < 2 {
		return trajectory.Trajectory{}, fmt.Errorf("%d messages; want the question and at least one reply", len(ms))
	}
	for i, m := range ms {
		if m.Role != "user" && m.Role != "assistant" {
			return trajectory.Trajectory{}, fmt.Errorf("message %d: role %q not supported (user, assistant)", i, m.Role)
		}
	}
	var question string
	var contents []string
	roles := make([]string, 0, len(ms))
	merged := false
	if ms[0].Role == "user" {
		question = ms[0].Content
		for _, m := range ms[1:] {
			contents = append(contents, m.Content)
			roles = append(roles, m.Role)
		}
	} else {
		// FireAct's gpt files have rows whose question was glued onto the first
		// assistant message ("<question>\nAction: finish[...]").
		q, rest, ok := strings.Cut(ms[0].Content, "\n")
		if !ok {
			return trajectory.Trajectory{}, fmt.Errorf("first message is the assistant's and holds no question line")
		}
		question, merged = q, true
		contents = append(contents, rest)
		roles = append(roles, "assistant")
		for _, m := range ms[1:] {
			contents = append(contents, m.Content)
			roles = append(roles, m.Role)
		}
	}
	if strings.TrimSpace(question) == "" {
		return trajectory.Trajectory{}, fmt.Errorf("empty question")
	}
	t := trajectory.Parse(strings.Join(contents, "\n"))
	t.Question = question
	if !equalMessages(ChatMessages(t), ms) {
		var b strings.Builder
		if merged {
			b.WriteString(layoutMerged)
		}
		for i, c := range contents {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(roles[i][:1])
			b.WriteString(strconv.Itoa(strings.Count(c, "\n") + 1))
		}
		t.Layout = b.String()
		if !equalMessages(ChatMessages(t), ms) {
			return trajectory.Trajectory{}, fmt.Errorf("internal: messages do not round-trip")
		}
	}
	return t, nil
}

// layoutMessages splits the rendered body by t.Layout; ok is false when the
// layout does not fit the text (then the canonical split is used).
func layoutMessages(t trajectory.Trajectory) ([]Message, bool) {
	toks := strings.Fields(t.Layout)
	merged := len(toks) > 0 && toks[0] == layoutMerged
	if merged {
		toks = toks[1:]
	}
	lines := strings.Split(trajectory.Render(t), "\n")
	var ms []Message
	if !merged {
		ms = append(ms, Message{Role: "user", Content: t.Question})
	}
	pos := 0
	for i, tok := range toks {
		if len(tok) < 2 {
			return nil, false
		}
		role := map[byte]string{'a': "assistant", 'u': "user"}[tok[0]]
		n, err := strconv.Atoi(tok[1:])
		if role == "" || err != nil || n < 1 || pos+n > len(lines) {
			return nil, false
		}
		content := strings.Join(lines[pos:pos+n], "\n")
		pos += n
		if merged && i == 0 {
			content = t.Question + "\n" + content
		}
		ms = append(ms, Message{Role: role, Content: content})
	}
	if pos != len(lines) {
		return nil, false
	}
	return ms, true
}

func equalMessages(a, b []Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
