// Package tasks loads the question sets fireact runs on (HotpotQA, StrategyQA,
// Bamboogle, MMLU) behind one Task interface that the demo world implements
// too, and rebuilds FireAct's question order.
package tasks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/fireact/fireact/agent/metrics"
)

// Question is one question of a task split.
type Question struct {
	Index    int            // position in the split's data file
	ID       string         // the dataset's own id, if any
	Text     string         // question text as the agent sees it (MMLU: with options)
	Gold     string         // gold answer ("" when the split has none)
	Metadata map[string]any // dataset-specific extras (type, subject, facts, ...)
}

// Task is a split of questions with its metric.
type Task interface {
	// Name is the task name ("hotpotqa").
	Name() string
	// Split is the split name ("dev").
	Split() string
	// Len is the number of questions.
	Len() int
	// Question returns question i, 0 <= i < Len().
	Question(i int) Question
	// Score scores a prediction against a gold answer.
	Score(pred, gold string) metrics.Scores
}

// Static is a Task over questions held in memory; the loaders return it.
type Static struct {
	TaskName  string
	SplitName string
	Questions []Question
	Scorer    func(pred, gold string) metrics.Scores
}

// Name implements Task.
func (s *Static) Name() string { return s.TaskName }

// Split implements Task.
func (s *Static) Split() string { return s.SplitName }

// Len implements Task.
func (s *Static) Len() int { return len(s.Questions) }

// Question implements Task.
func (s *Static) Question(i int) Question { return s.Questions[i] }

// Score implements Task.
func (s *Static) Score(pred, gold string) metrics.Scores { return s.Scorer(pred, gold) }

// Task names.
const (
	HotpotQA   = "hotpotqa"
	StrategyQA = "strategyqa"
	Bamboogle  = "bamboogle"
	MMLU       = "mmlu"
)

// Names lists the tasks Open knows, sorted.
func Names() []string { return []string{Bamboogle, HotpotQA, MMLU, StrategyQA} }

// ScorerFor returns the metric of a task: yes/no match for StrategyQA, letter
// match for MMLU, EM/F1 for the others.
func ScorerFor(task string) func(pred, gold string) metrics.Scores {
	switch task {
	case StrategyQA:
		return metrics.YesNoMatch
	case MMLU:
		return metrics.Choice
	default:
		return metrics.QA
	}
}

// EnvDataDir names the environment variable with the FireAct data directory.
const EnvDataDir = "FIREACT_DATA"

// DefaultDataDir is used when neither the flag nor FIREACT_DATA is set and it
// exists: the shared data beside a checkout.
const DefaultDataDir = "../shared/data/fireact"

// DataDir resolves the data directory: flagValue, else $FIREACT_DATA, else
// DefaultDataDir if it exists, else "".
func DataDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if d := os.Getenv(EnvDataDir); d != "" {
		return d
	}
	if st, err := os.Stat(DefaultDataDir); err == nil && st.IsDir() {
		return DefaultDataDir
	}
	return ""
}

// Path returns where Open looks for a task split under dataDir, following the
// layout of FireAct's data folder:
//
//	hotpotqa/<split>.json, strategyqa/strategyqa_<split>.json,
//	bamboogle/<split>.csv, mmlu/<split>/*.csv
func Path(dataDir, task, split string) (string, error) {
	switch task {
	case HotpotQA:
		return filepath.Join(dataDir, "hotpotqa", split+".json"), nil
	case StrategyQA:
		return filepath.Join(dataDir, "strategyqa", "strategyqa_"+split+".json"), nil
	case Bamboogle:
		return filepath.Join(dataDir, "bamboogle", split+".csv"), nil
	case MMLU:
		return filepath.Join(dataDir, "mmlu", split), nil
	}
	return "", fmt.Errorf("tasks: unknown task %q (known: %v)", task, Names())
}

// Open loads a task split from its standard place under dataDir.
func Open(dataDir, task, split string) (Task, error) {
	p, err := Path(dataDir, task, split)
	if err != nil {
		return nil, err
	}
	return Load(task, split, p)
}

// Load loads a task split from an explicit file (directory for MMLU).
func Load(task, split, path string) (Task, error) {
	switch task {
	case HotpotQA:
		return LoadHotpotQA(path, split)
	case StrategyQA:
		return LoadStrategyQA(path, split)
	case Bamboogle:
		return LoadBamboogle(path, split)
	case MMLU:
		return LoadMMLU(path, split)
	}
	return nil, fmt.Errorf("tasks: unknown task %q (known: %v)", task, Names())
}

// sortedKeys is used to keep metadata deterministic.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
