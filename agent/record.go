package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

// Record writes a result as the episode of run runID for a stored question,
// with all its steps in one transaction. solveErr is the error Solve returned
// with res (nil for a done or unfinished episode); it becomes the episode's
// error text.
func Record(ctx context.Context, s *store.Store, runID, questionID int64, res Result, solveErr error) (store.Episode, error) {
	ep := store.Episode{RunID: runID, QuestionID: questionID}
	store.EpisodeFromTrajectory(&ep, res.Trajectory)
	ep.Status = res.Status
	ep.EM, ep.F1 = res.Scores.EM, res.Scores.F1
	ep.PromptTokens = res.Usage.PromptTokens
	ep.GeneratedTokens = res.Usage.GeneratedTokens
	ep.LatencySeconds = res.Latency.Seconds()
	ep.Cost = res.Usage.Cost
	if solveErr != nil {
		ep.Error = solveErr.Error()
		if errors.Is(solveErr, ErrOutOfContext) {
			// The prefix is what the store's summary counts as a wrong answer.
			ep.Error = store.OutOfContext + ep.Error
		}
	}
	steps := store.StepsFromTrajectory(res.Trajectory)
	for i := range steps {
		if i >= len(res.Info) {
			break
		}
		in := res.Info[i]
		steps[i].Raw = in.Raw
		steps[i].PromptTokens = in.PromptTokens
		steps[i].GeneratedTokens = in.GeneratedTokens
		steps[i].LatencySeconds = in.Latency.Seconds()
		steps[i].Noise = in.Noise
	}
	if err := s.InsertEpisode(ctx, &ep, steps); err != nil {
		return ep, fmt.Errorf("agent: record episode: %w", err)
	}
	return ep, nil
}

// StoreQuestion converts a task question to its store record.
func StoreQuestion(t tasks.Task, q tasks.Question) (store.Question, error) {
	meta := "{}"
	if len(q.Metadata) > 0 {
		b, err := json.Marshal(q.Metadata)
		if err != nil {
			return store.Question{}, fmt.Errorf("agent: question %d metadata: %w", q.Index, err)
		}
		meta = string(b)
	}
	return store.Question{Task: t.Name(), Split: t.Split(), Index: q.Index, QID: q.ID,
		Text: q.Text, Gold: q.Gold, Metadata: meta}, nil
}

// Ad-hoc questions (asked on the command line or through a server) are stored
// under this task and split.
const (
	AdhocTask  = "adhoc"
	AdhocSplit = "adhoc"
)

// AdhocQuestion is the store record of a question asked outside any task. Its
// index is a hash of the text, so asking the same question again finds the
// same record.
func AdhocQuestion(text, gold string) store.Question {
	h := fnv.New32a()
	h.Write([]byte(text))
	return store.Question{Task: AdhocTask, Split: AdhocSplit, Index: int(h.Sum32() & 0x7fffffff),
		Text: text, Gold: gold, Metadata: "{}"}
}

// Answer solves one ad-hoc question with a and, when s is not nil, records the
// episode in run runID: the single call behind `fireact run` and a server's
// agent endpoint. A run holds one episode per question, so asking the same
// question twice in one run records only the first (store.ErrEpisodeExists).
func Answer(ctx context.Context, s *store.Store, runID int64, a *Agent, q Query) (Result, error) {
	res, err := a.Solve(ctx, q)
	if s == nil || ctx.Err() != nil {
		return res, err
	}
	sq := []store.Question{AdhocQuestion(q.Text, q.Gold)}
	if uerr := s.UpsertQuestions(ctx, sq); uerr != nil {
		return res, fmt.Errorf("agent: record question: %w", uerr)
	}
	if _, rerr := Record(ctx, s, runID, sq[0].ID, res, err); rerr != nil {
		return res, rerr
	}
	return res, err
}
