package dataformat

import (
	"regexp"
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// Task names as the store records them.
const (
	TaskHotpotQA   = "hotpotqa"
	TaskStrategyQA = "strategyqa"
	TaskMMLU       = "mmlu"
)

var (
	optionARE     = regexp.MustCompile(`(?m)^A[.)] `)
	optionDRE     = regexp.MustCompile(`(?m)^D[.)] `)
	yesNoAnswerRE = regexp.MustCompile(`(?i)\banswer:? (yes|no)\b`)
)

// Classify sets t.Method and t.Task from markers in FireAct's data. The
// released files have no labels; these markers reproduce the files' own
// composition (checked in the tests against the per-file counts):
//
// Method:
//   - Reflexion: a thought carries the injected "... let me do a reflection
//     and think about how to improve my strategy." text.
//   - CoT: no tool call. In alpaca files CoT outputs are also the only ones
//     without a trailing newline, which separates them from ReAct
//     trajectories that answer at once; chat files lose that marker, so there
//     a ReAct trajectory with no search reads as CoT.
//   - ReAct: everything else.
//
// Task:
//   - MMLU: the question (or the text before the first step) lists options
//     "A. ..." to "D. ...".
//   - HotpotQA: the final observation reports reward = True/False (FireAct's
//     HotpotQA environment writes booleans; the others write 1/0).
//   - StrategyQA: numeric reward and a lower-case yes/no answer (or an
//     "Answer: yes/no" inside it); other numeric-reward trajectories are
//     HotpotQA CoT (whose reward is 1/0 and whose Yes/No are capitalised).
func Classify(t *trajectory.Trajectory, f Format) {
	t.Method = classifyMethod(*t, f)
	t.Task = classifyTask(*t)
}

func classifyMethod(t trajectory.Trajectory, f Format) string {
	for _, s := range t.Steps {
		if strings.Contains(strings.ToLower(s.Reflection), "reflection") {
			return trajectory.MethodReflexion
		}
	}
	if t.Searches() == 0 && (f != Alpaca || t.Suffix == "") {
		return trajectory.MethodCoT
	}
	return trajectory.MethodReAct
}

func classifyTask(t trajectory.Trajectory) string {
	q := t.Question + "\n" + t.Prefix
	if optionARE.MatchString(q) && optionDRE.MatchString(q) {
		return TaskMMLU
	}
	for i := len(t.Steps) - 1; i >= 0; i-- {
		obs := t.Steps[i].Observation
		if strings.Contains(obs, "reward = True") || strings.Contains(obs, "reward = False") {
			return TaskHotpotQA
		}
		if strings.Contains(obs, "reward =") {
			break
		}
	}
	a := strings.TrimSpace(t.Answer)
	first := a
	if i := strings.IndexFunc(a, func(r rune) bool { return r < 'a' || r > 'z' }); i >= 0 {
		first = a[:i]
	}
	if first == "yes" || first == "no" || yesNoAnswerRE.MatchString(a) {
		return TaskStrategyQA
	}
	return TaskHotpotQA
}
