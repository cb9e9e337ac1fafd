package store

import (
	"context"
	"fmt"

	"github.com/fireact/fireact/store/trajectory"
)

// StepsFromTrajectory converts a trajectory's steps to step records (token
// counts, latency and noise are left for the caller to fill).
func StepsFromTrajectory(t trajectory.Trajectory) []Step {
	out := make([]Step, len(t.Steps))
	for i, s := range t.Steps {
		out[i] = Step{N: i, Reflection: s.Reflection, Thought: s.Thought, Action: s.Action,
			Argument: s.Argument, Observation: s.Observation, Raw: s.Raw, Verbatim: s.Verbatim}
	}
	return out
}

// EpisodeFromTrajectory fills the trajectory-derived fields of an episode:
// method, prediction, reward, turns and the text layout (prefix, suffix,
// numbering) that makes the trajectory render back exactly.
func EpisodeFromTrajectory(ep *Episode, t trajectory.Trajectory) {
	ep.Method = t.Method
	ep.Prediction = t.Answer
	ep.Reward = t.Reward
	ep.Turns = len(t.Steps)
	ep.TextPrefix = t.Prefix
	ep.TextSuffix = t.Suffix
	ep.Numbered = t.Numbered
	ep.Layout = t.Layout
}

// TrajectoryOf rebuilds the trajectory of a recorded episode from its
// question, episode and steps: the inverse of EpisodeFromTrajectory and
// StepsFromTrajectory.
func TrajectoryOf(q Question, ep Episode, steps []Step) trajectory.Trajectory {
	t := trajectory.Trajectory{
		Question: q.Text,
		Prefix:   ep.TextPrefix,
		Suffix:   ep.TextSuffix,
		Numbered: ep.Numbered,
		Layout:   ep.Layout,
		Answer:   ep.Prediction,
		Reward:   ep.Reward,
		Method:   ep.Method,
		Task:     q.Task,
	}
	for _, s := range steps {
		t.Steps = append(t.Steps, trajectory.Step{Reflection: s.Reflection, Thought: s.Thought,
			Action: s.Action, Argument: s.Argument, Observation: s.Observation, Raw: s.Raw, Verbatim: s.Verbatim})
	}
	return t
}

// Trajectory loads the trajectory of one episode.
func (s *Store) Trajectory(ctx context.Context, episodeID int64) (trajectory.Trajectory, error) {
	ep, err := s.Episode(ctx, episodeID)
	if err != nil {
		return trajectory.Trajectory{}, err
	}
	q, err := s.Question(ctx, ep.QuestionID)
	if err != nil {
		return trajectory.Trajectory{}, fmt.Errorf("store: trajectory of episode %d: %w", episodeID, err)
	}
	steps, err := s.Steps(ctx, episodeID)
	if err != nil {
		return trajectory.Trajectory{}, err
	}
	return TrajectoryOf(q, ep, steps), nil
}
