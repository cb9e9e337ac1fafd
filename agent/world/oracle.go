package world

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/store/trajectory"
)

// Oracle is the demo's teacher: a scripted policy that knows each question's plan
// and writes ReAct, CoT and Reflexion turns in FireAct's style. It is an agent.LLM,
// so it runs in the real agent loop and its searches go through the real search
// tool; it reads what it needs from Request.State instead of parsing the prompt.
type Oracle struct {
	byText map[string]Question
	// WrongFirst is the fraction of Reflexion episodes (chosen by a hash of the
	// question, so runs are reproducible) whose first answer is wrong, so that the
	// harness's "Answer is incorrect" and the reflection appear in the data.
	WrongFirst float64
}

// NewOracle returns the oracle teacher of w.
func NewOracle(w *World) *Oracle {
	o := &Oracle{byText: map[string]Question{}, WrongFirst: 0.5}
	for _, qs := range [][]Question{w.Train, w.Dev} {
		for _, q := range qs {
			o.byText[q.Text] = q
		}
	}
	return o
}

// Complete writes the next turn. Token counts are whitespace words (the oracle
// has no tokenizer); its cost is zero.
func (o *Oracle) Complete(ctx context.Context, req agent.Request) (agent.Response, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return agent.Response{}, err
	}
	st := req.State
	if st == nil {
		return agent.Response{}, fmt.Errorf("world oracle: request carries no episode state")
	}
	q, ok := o.byText[st.Question]
	if !ok {
		return agent.Response{}, fmt.Errorf("world oracle: unknown question %q", st.Question)
	}
	thought, action := o.turn(q, st)
	text := " " + thought + "\nAction: " + action
	if st.Reask {
		text = " " + action
	}
	if req.OnText != nil {
		if err := req.OnText(text); err != nil {
			return agent.Response{}, err
		}
	}
	return agent.Response{
		Text:            text,
		PromptTokens:    len(strings.Fields(req.Prompt)),
		GeneratedTokens: len(strings.Fields(text)),
		FinishReason:    "stop",
		Latency:         time.Since(start),
	}, nil
}

// turn decides the next thought and action from the steps so far.
func (o *Oracle) turn(q Question, st *agent.State) (string, string) {
	if st.Method == trajectory.MethodCoT {
		return strings.Join(q.Facts, " ") + " " + conclude(q), finish(q.Answer)
	}
	// Which hops have been searched with a useful observation, and whether the
	// last step was one of those searches.
	done := 0
	wrongTried := false
	lastUseful := false
	for _, s := range st.Steps {
		name, arg := strings.ToLower(s.Action), s.Argument
		lastUseful = false
		if name == "search" && done < len(q.Hops) && strings.EqualFold(strings.TrimSpace(arg), q.Hops[done]) && useful(s.Observation, q.Hops[done]) {
			done++
			lastUseful = true
		}
		if name == "finish" {
			wrongTried = true
		}
	}
	if done < len(q.Hops) {
		hop := q.Hops[done]
		var thought string
		switch {
		case len(st.Steps) > 0 && !lastUseful:
			thought = fmt.Sprintf("The search did not return what I need. Let me search %s again.", hop)
		case done == 0:
			thought = fmt.Sprintf("I need to search %s first.", hop)
		default:
			thought = fmt.Sprintf("%s I need to search %s next.", q.Facts[done-1], hop)
		}
		return thought, "search[" + hop + "]"
	}
	facts := q.Facts[len(q.Facts)-1]
	if len(q.Facts) > 1 && q.Kind != KindNationality && q.Kind != KindBirthplace {
		facts = strings.Join(q.Facts, " ")
	}
	if st.Method == trajectory.MethodReflexion && !wrongTried && o.wrongFirst(q) {
		return facts + " So the answer is " + q.Wrong + ".", finish(q.Wrong)
	}
	return facts + " " + conclude(q), finish(q.Answer)
}

// useful reports whether an observation is the page of the entity searched for
// (not "None", not another query's page swapped in by noise, not a page that
// merely mentions it): every page of the world starts with its entity's name.
func useful(obs, hop string) bool {
	return strings.HasPrefix(strings.TrimSpace(obs), hop)
}

func conclude(q Question) string {
	return "So the answer is " + q.Answer + "."
}

func finish(ans string) string { return "finish[" + ans + "]" }

func (o *Oracle) wrongFirst(q Question) bool {
	h := fnv.New32a()
	h.Write([]byte(q.Text))
	return float64(h.Sum32()%1000)/1000 < o.WrongFirst
}
