package agent

import (
	"fmt"
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// DefaultMaxTurns is FireAct's step budget: at most 11 model turns per episode.
const DefaultMaxTurns = 11

// Method is a prompting method. All methods run the same loop (Agent.Solve);
// they differ only in these prompt and stop rules.
type Method struct {
	// Name is the trajectory method name (trajectory.MethodReAct, ...).
	Name string
	// Tools lets the agent call search; without it the only valid action is
	// finish.
	Tools bool
	// MaxTurns is the budget of model turns; an episode that has not finished
	// by then is recorded as unfinished.
	MaxTurns int
	// ReflectAfter injects a reflection thought once, after this many steps
	// without finishing (Reflexion: 5, as in FireAct's data); 0 never.
	ReflectAfter int
	// RetryWrong is how many times a wrong finish is answered with "Answer is
	// incorrect." and a reflection instead of ending the episode. It needs the
	// gold answer and applies only with Agent.OracleRetry (teacher generation).
	RetryWrong int
	// WarnLastTurn injects FireAct's wrap-up warning before the last turn.
	WarnLastTurn bool
	// AnswerOnly makes a turn a bare answer ("Answer: X", the IO method)
	// instead of a thought and an action.
	AnswerOnly bool
}

// ReAct interleaves thoughts, search actions and observations until finish.
func ReAct() Method {
	return Method{Name: trajectory.MethodReAct, Tools: true, MaxTurns: DefaultMaxTurns}
}

// CoT reasons in one thought and finishes, without tools.
func CoT() Method {
	return Method{Name: trajectory.MethodCoT, MaxTurns: 1}
}

// Reflexion is ReAct that reflects after 5 steps without an answer, and (with
// Agent.OracleRetry) after a wrong answer, and is warned to wrap up before its
// last turn.
func Reflexion() Method {
	return Method{Name: trajectory.MethodReflexion, Tools: true, MaxTurns: DefaultMaxTurns,
		ReflectAfter: 5, RetryWrong: 1, WarnLastTurn: true}
}

// IO answers directly, without thought or tools.
func IO() Method {
	return Method{Name: trajectory.MethodIO, MaxTurns: 1, AnswerOnly: true}
}

// MethodNames lists the method names MethodByName accepts.
func MethodNames() []string {
	return []string{trajectory.MethodReAct, trajectory.MethodCoT, trajectory.MethodReflexion, trajectory.MethodIO}
}

// MethodByName returns the method with the given name.
func MethodByName(name string) (Method, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case trajectory.MethodReAct:
		return ReAct(), nil
	case trajectory.MethodCoT:
		return CoT(), nil
	case trajectory.MethodReflexion:
		return Reflexion(), nil
	case trajectory.MethodIO:
		return IO(), nil
	}
	return Method{}, fmt.Errorf("agent: unknown method %q (want one of %s)", name, strings.Join(MethodNames(), ", "))
}

// The harness texts injected into thoughts. The step-limit reflection and the
// wrap-up warning are FireAct's own words (they appear verbatim in its released
// fine-tuning data), so that trajectories we generate look like the ones
// FireAct fine-tuned on.
func reflectionText(steps int) string {
	return fmt.Sprintf("Now that I haven't solved the task within %d steps, let me do a reflection and think about how to improve my strategy.", steps)
}

// wrongAnswerText and incorrectObservation are ours, not FireAct's: its
// released code has no Reflexion loop and its data no retried wrong answer.
// They follow Reflexion's trial-and-reflect idea in FireAct's wording of the
// step-limit reflection.
func wrongAnswerText() string {
	return "My answer was incorrect. Let me do a reflection and think about how to improve my strategy."
}

func warnText(steps int) string {
	return fmt.Sprintf("Now that I haven't solved the task within %d steps, I need to wrap up and finish this task in the next step.", steps)
}

// incorrectObservation answers a wrong finish that Reflexion may retry.
const incorrectObservation = "Answer is incorrect."
