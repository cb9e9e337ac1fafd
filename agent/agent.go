package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fireact/fireact/agent/metrics"
	"github.com/fireact/fireact/agent/turn"
	"github.com/fireact/fireact/store/trajectory"
)

// Agent answers questions with one method, one prompt format, one LLM and an
// optional search tool. It is safe for concurrent use: Solve keeps all
// episode state on its own stack.
type Agent struct {
	LLM LLM
	// Search serves the search action; nil means no search tool (a method
	// with tools then observes an error message).
	Search Tool
	// Lookup says that Search also serves lookup[keyword] (ReAct's Wikipedia
	// semantics, SearchStyleReAct): the grammar offers it and the invalid-
	// action message names it. Without it a lookup is read as a malformed
	// action and re-asked, as before lookup existed: FireAct's prompts and
	// data have no lookup.
	Lookup bool
	Method Method
	Prompt Prompt
	// Sampling applies to every turn.
	Sampling Sampling
	// Grammar constrains local models with GBNF so every turn parses.
	Grammar bool
	// OracleRetry lets a method with RetryWrong (Reflexion) answer a wrong
	// finish with "Answer is incorrect." and try again. Knowing the finish is
	// wrong takes the gold answer, so this is an oracle: right for a teacher
	// generating training data, wrong for scoring a student. Off by default.
	OracleRetry bool
	// MaxInvalid ends an episode (unfinished) after this many consecutive turns
	// that did not parse even after the re-ask; 0 means 3. An untrained model
	// would otherwise spend the whole budget on noise.
	MaxInvalid int
}

// Sampling are the generation settings of every turn.
type Sampling struct {
	Temperature float64
	TopP        float64
	// MaxTokens bounds one turn (0: 256).
	MaxTokens int
	Seed      int64
}

// Query is one question to solve.
type Query struct {
	Text string
	// Gold is the gold answer; "" when unknown (no reward is given and
	// Reflexion cannot retry a wrong answer).
	Gold string
	// Task names the task (for reward wording); "" is plain question answering.
	Task string
	// Key identifies the episode for seeded tools (Noise); "" uses Text.
	Key string
	// Score scores an answer; nil uses metrics.QA.
	Score func(pred, gold string) metrics.Scores
	// OnText, when set, receives the trajectory text as it is produced
	// (model text streamed, observations as they arrive).
	OnText func(text string)
}

// StepInfo is what the store records about a step beyond its text.
type StepInfo struct {
	Raw          string // the model's text, re-ask included
	PromptTokens int
	// CachedTokens are prompt tokens the LLM reused from its KV cache (prefix
	// reuse), not tool-cache hits.
	CachedTokens    int
	GeneratedTokens int
	Latency         time.Duration
	Noise           string
	// ToolCacheHit is set when the search observation came from the tool
	// cache (Observation.Cached) instead of the backend.
	ToolCacheHit bool
	Invalid      bool // the turn did not parse
}

// Usage sums the LLM calls of an episode.
type Usage struct {
	Calls           int
	PromptTokens    int
	CachedTokens    int
	GeneratedTokens int
	Cost            float64
}

func (u *Usage) add(r Response) {
	u.Calls++
	u.PromptTokens += r.PromptTokens
	u.CachedTokens += r.CachedTokens
	u.GeneratedTokens += r.GeneratedTokens
	u.Cost += r.Cost
}

// Result is a solved (or abandoned) episode.
type Result struct {
	Trajectory trajectory.Trajectory
	// Info has one entry per trajectory step.
	Info []StepInfo
	// Status is trajectory.StatusDone, StatusUnfinished or StatusError (the
	// store's episode statuses); the failure of an error episode is Solve's
	// error, not part of the result.
	Status  trajectory.Status
	Scores  metrics.Scores
	Usage   Usage
	Latency time.Duration
}

// Solve runs one episode. It returns an error (with Result.Status
// trajectory.StatusError and the steps so far) when the LLM or a tool fails
// for good or ctx is cancelled; running out of turns or of parseable output is
// a result (trajectory.StatusUnfinished), not an error.
func (a *Agent) Solve(ctx context.Context, q Query) (Result, error) {
	start := time.Now()
	ep := &episode{a: a, q: q, m: a.Method}
	if ep.m.MaxTurns <= 0 {
		ep.m.MaxTurns = DefaultMaxTurns
	}
	if q.OnText != nil {
		q.OnText(q.Text + "\n")
	}
	err := ep.run(ctx)
	res := ep.result()
	res.Latency = time.Since(start)
	if err != nil {
		res.Status = trajectory.StatusError
		return res, err
	}
	return res, nil
}

// episode is the state of one Solve call.
type episode struct {
	a        *Agent
	q        Query
	m        Method
	steps    []trajectory.Step
	info     []StepInfo
	usage    Usage
	finished bool
	scores   metrics.Scores
	reward   float64
}

// loop is the bookkeeping of one episode's turn loop.
type loop struct {
	maxInvalid int  // consecutive unparseable turns that end the episode
	invalid    int  // consecutive unparseable turns so far
	retries    int  // oracle retries of a wrong finish left
	reflected  bool // the step-limit reflection was injected
	wrong      bool // the last finish was wrong and retried: reflect on it next
}

func (e *episode) run(ctx context.Context) error {
	l := loop{maxInvalid: e.a.MaxInvalid}
	if l.maxInvalid <= 0 {
		l.maxInvalid = 3
	}
	if e.a.OracleRetry {
		l.retries = e.m.RetryWrong
	}
	for k := 0; k < e.m.MaxTurns && !e.finished; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		step, info, err := e.turn(ctx, e.reflection(&l, k))
		if err != nil {
			return err
		}
		// turn returns a search, a finish or (Invalid) no action at all.
		switch step.Action {
		case turn.ActionSearch, turn.ActionLookup:
			l.invalid = 0
			if err := e.search(ctx, &step, &info); err != nil {
				return err
			}
			e.record(step, info)
		case turn.ActionFinish:
			l.invalid = 0
			e.finish(&l, step, info, k == e.m.MaxTurns-1)
		default:
			e.record(step, info)
			if l.invalid++; l.invalid >= l.maxInvalid {
				return nil // unfinished: the model keeps writing noise
			}
		}
	}
	return nil
}

// reflection is the harness text injected before turn k's thought: the
// retried wrong answer's reflection, Reflexion's step-limit reflection (once)
// or the wrap-up warning before the last turn, in that order of precedence.
func (e *episode) reflection(l *loop, k int) string {
	switch {
	case l.wrong:
		l.wrong = false
		return wrongAnswerText()
	case e.m.ReflectAfter > 0 && !l.reflected && len(e.steps) >= e.m.ReflectAfter:
		l.reflected = true
		return reflectionText(len(e.steps))
	case e.m.WarnLastTurn && k == e.m.MaxTurns-1 && len(e.steps) > 0:
		return warnText(len(e.steps))
	}
	return ""
}

// finish scores a finish step and records it. A wrong answer that an oracle
// retry may take back (retries left, not on the last turn) is answered
// "Answer is incorrect." and the loop goes on; any other finish ends the
// episode with FireAct's reward observation.
func (e *episode) finish(l *loop, step trajectory.Step, info StepInfo, lastTurn bool) {
	known := e.q.Gold != ""
	if known {
		e.scores = e.score(step.Argument)
		e.reward = e.scores.EM
	}
	if known && e.reward < 1 && l.retries > 0 && !lastTurn {
		l.retries--
		l.wrong = true
		step.Observation = incorrectObservation
		e.record(step, info)
		return
	}
	step.Observation = FinishObservation(e.q.Task, e.reward, known)
	e.record(step, info)
	e.finished = true
}

func (e *episode) score(pred string) metrics.Scores {
	if e.q.Score != nil {
		return e.q.Score(pred, e.q.Gold)
	}
	return metrics.QA(pred, e.q.Gold)
}

// record appends a finished step and streams its observation.
func (e *episode) record(s trajectory.Step, info StepInfo) {
	e.steps = append(e.steps, s)
	e.info = append(e.info, info)
	if e.q.OnText != nil && s.Observation != "" {
		e.q.OnText("\n" + trajectory.RenderObservation(s, 0) + "\n")
	} else if e.q.OnText != nil {
		e.q.OnText("\n")
	}
}

// turn asks the model for one turn, re-asking for the action when the text
// does not parse. An unparseable turn comes back with info.Invalid set and an
// observation telling the model what was wrong, as FireAct's environment does.
func (e *episode) turn(ctx context.Context, reflection string) (trajectory.Step, StepInfo, error) {
	in := turnInput{question: e.q.Text, steps: e.steps, reflection: reflection}
	var info StepInfo
	text, err := e.complete(ctx, in, &info)
	if err != nil {
		return trajectory.Step{}, info, err
	}
	step := trajectory.Step{Reflection: reflection}
	if e.m.AnswerOnly {
		ans, perr := turn.ParseAnswer(text)
		if perr != nil {
			return e.invalid(step, turn.Fold(text), &info, perr), info, nil
		}
		step.Action, step.Argument = turn.ActionFinish, ans
		return step, info, nil
	}
	t, perr := turn.Parse(text)
	if perr == nil {
		perr = e.checkAction(t.Action)
	}
	if perr != nil {
		// FireAct's re-ask: keep the thought's first line and ask for the action.
		thought := turn.Fold(turn.FirstLine(strings.TrimLeft(t.Thought, " ")))
		in.reaskThought = &thought
		more, err := e.complete(ctx, in, &info)
		if err != nil {
			return trajectory.Step{}, info, err
		}
		name, arg, perr2 := turn.ParseAction(more)
		if perr2 == nil {
			perr2 = e.checkAction(name)
		}
		if perr2 != nil {
			return e.invalid(step, thought, &info, perr2), info, nil
		}
		t = turn.Turn{Thought: thought, Action: name, Argument: arg}
	}
	if (t.Action == turn.ActionSearch || t.Action == turn.ActionLookup) && !e.m.Tools {
		return e.invalid(step, t.Thought, &info, fmt.Errorf("%w: %s takes no %s", turn.ErrBadAction, e.m.Name, t.Action)), info, nil
	}
	step.Thought, step.Action, step.Argument = t.Thought, t.Action, t.Argument
	return step, info, nil
}

// checkAction refuses a lookup when the search tool has none: the parser
// knows the name, but for this agent it is as unknown as any other, so the
// turn takes the re-ask path exactly as it did before lookup was parsed.
func (e *episode) checkAction(name string) error {
	if name == turn.ActionLookup && !e.a.Lookup {
		return fmt.Errorf("%w: unknown action %q", turn.ErrBadAction, name)
	}
	return nil
}

// invalid turns step into an unparseable turn's step: the thought, no action
// (the loop reads an empty action as invalid) and an observation naming the
// valid actions.
func (e *episode) invalid(step trajectory.Step, thought string, info *StepInfo, err error) trajectory.Step {
	step.Thought = thought
	step.Observation = "Invalid action (" + err.Error() + "). Valid actions are search[query] and finish[answer]."
	if e.a.Lookup {
		step.Observation = "Invalid action (" + err.Error() + "). Valid actions are search[entity], lookup[keyword] and finish[answer]."
	}
	if !e.m.Tools {
		step.Observation = "Invalid action (" + err.Error() + "). Answer with finish[answer]."
	}
	info.Invalid = true
	return step
}

// complete makes one LLM call for a turn and accounts for it on info.
func (e *episode) complete(ctx context.Context, in turnInput, info *StepInfo) (string, error) {
	prompt, msgs := e.a.Prompt.build(e.m, in)
	reask := in.reaskThought != nil
	req := Request{
		Prompt: prompt, Messages: msgs,
		Stop:        stops(e.m, reask),
		MaxTokens:   e.a.Sampling.MaxTokens,
		Temperature: e.a.Sampling.Temperature,
		TopP:        e.a.Sampling.TopP,
		Seed:        e.a.Sampling.Seed,
		State: &State{Question: e.q.Text, Method: e.m.Name, Steps: e.steps,
			Reflection: in.reflection, Reask: reask},
	}
	if req.MaxTokens <= 0 {
		req.MaxTokens = 256
	}
	if e.a.Grammar {
		switch {
		case e.m.AnswerOnly:
			req.Grammar = answerGrammar()
		case reask:
			req.Grammar = actionGrammar(e.m.Tools, e.a.Lookup)
		default:
			req.Grammar = turnGrammar(e.m.Tools, e.a.Lookup)
		}
		req.MaxTokens = max(req.MaxTokens, grammarMaxTokens)
	}
	if e.q.OnText != nil {
		open := opening(e.m, in)
		if reask {
			open = "\nAction:"
		}
		e.q.OnText(open)
		req.OnText = func(s string) error { e.q.OnText(s); return nil }
	}
	resp, err := e.a.LLM.Complete(ctx, req)
	if err != nil {
		return "", fmt.Errorf("agent: llm: %w", err)
	}
	// Store text must be valid UTF-8; an untrained model emits byte pieces.
	resp.Text = strings.ToValidUTF8(resp.Text, "\uFFFD")
	e.usage.add(resp)
	info.PromptTokens += resp.PromptTokens
	info.CachedTokens += resp.CachedTokens
	info.GeneratedTokens += resp.GeneratedTokens
	info.Latency += resp.Latency
	if info.Raw != "" {
		info.Raw += "\nAction:"
	}
	info.Raw += resp.Text
	return resp.Text, nil
}

// search calls the search tool for a step's action (search or lookup) and
// sets its observation. The tool gets the episode's earlier tool calls
// (WithToolHistory): a lookup reads the page of the last search, and keeping
// that in the episode rather than in the tool lets one tool serve many
// episodes at once.
func (e *episode) search(ctx context.Context, step *trajectory.Step, info *StepInfo) error {
	if e.a.Search == nil {
		step.Observation = "Invalid action: no search tool is available. Answer with finish[answer]."
		return nil
	}
	key := e.q.Key
	if key == "" {
		key = e.q.Text
	}
	start := time.Now()
	var hist []ToolCall
	for _, s := range e.steps {
		if s.Action == turn.ActionSearch || s.Action == turn.ActionLookup {
			hist = append(hist, ToolCall{Action: s.Action, Arg: s.Argument})
		}
	}
	tctx := WithToolHistory(WithCallSite(ctx, CallSite{Episode: key, Step: len(e.steps)}), hist)
	obs, err := e.a.Search.Call(tctx, step.Action, step.Argument)
	if err != nil {
		return fmt.Errorf("agent: %s %q: %w", step.Action, turn.Clip(step.Argument, 60), err)
	}
	info.Latency += time.Since(start)
	info.Noise, info.ToolCacheHit = obs.Noise, obs.Cached
	step.Observation = observationLine(obs.Text)
	return nil
}

// observationLine folds an observation to one line: a newline inside it would
// start what the trajectory parser reads as a new field.
func observationLine(s string) string {
	s = turn.Fold(s)
	if s == "" {
		return "None"
	}
	return s
}

func (e *episode) result() Result {
	t := trajectory.Trajectory{
		Question: e.q.Text,
		Steps:    e.steps,
		Method:   e.m.Name,
		Task:     e.q.Task,
		Reward:   e.reward,
	}
	// FireAct's data ends tool-using trajectories with a newline and CoT ones
	// without; keeping the quirk lets finetune's classifier read our data too.
	if e.m.Tools {
		t.Suffix = "\n"
	}
	for i := len(e.steps) - 1; i >= 0; i-- {
		if e.steps[i].IsFinish() {
			t.Answer = e.steps[i].Argument
			break
		}
	}
	status := trajectory.StatusUnfinished
	if e.finished {
		status = trajectory.StatusDone
	}
	return Result{Trajectory: t, Info: e.info, Status: status, Scores: e.scores, Usage: e.usage}
}
