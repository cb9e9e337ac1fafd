// Package tasks loads the question sets fireact runs on (HotpotQA, StrategyQA,
// Bamboogle, MMLU) behind one Task interface that the demo world implements
// too, and rebuilds FireAct's question order.
package tasks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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

// Scoring selects how a task words its questions and scores its answers.
type Scoring string

// Scorings.
const (
	// ScoringFireAct reproduces FireAct's tasks/*.py: StrategyQA scores 1 when
	// the lower-cased answer starts with "yes"/"no" as the gold is true/false,
	// MMLU when it starts with the gold letter, HotpotQA and Bamboogle by EM and
	// F1 of normalize_answer; MMLU questions read "Question: <stem>\nA. ..." as
	// FireAct's MMLUTask builds them. It is the default.
	ScoringFireAct Scoring = "fireact"
	// ScoringLenient keeps the question texts bare and reads answers as models
	// write them: "The answer is B", "(B)", "true" count (metrics.Choice,
	// metrics.YesNoMatch); HotpotQA and Bamboogle score as with ScoringFireAct.
	ScoringLenient Scoring = "lenient"
)

// ParseScoring checks a scoring name; "" is ScoringFireAct.
func ParseScoring(s string) (Scoring, error) {
	switch sc := Scoring(strings.ToLower(s)); sc {
	case ScoringFireAct, ScoringLenient:
		return sc, nil
	case "":
		return ScoringFireAct, nil
	}
	return "", fmt.Errorf("tasks: unknown scoring %q (want fireact or lenient)", s)
}

// Scorer returns the metric of a task under sc: yes/no match for StrategyQA,
// letter match for MMLU, EM/F1 for the others.
func (sc Scoring) Scorer(task string) func(pred, gold string) metrics.Scores {
	switch task {
	case StrategyQA:
		if sc == ScoringLenient {
			return metrics.YesNoMatch
		}
		return metrics.FireActYesNo
	case MMLU:
		if sc == ScoringLenient {
			return metrics.Choice
		}
		return metrics.FireActChoice
	default:
		return metrics.QA
	}
}

// mmluPrefix is what FireAct's MMLUTask writes before the question stem.
func (sc Scoring) mmluPrefix() string {
	if sc == ScoringLenient {
		return ""
	}
	return "Question: "
}

// ScorerFor returns the metric of a task as FireAct scores it
// (ScoringFireAct.Scorer).
func ScorerFor(task string) func(pred, gold string) metrics.Scores {
	return ScoringFireAct.Scorer(task)
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

// Open loads a task split from its standard place under dataDir, worded and
// scored as FireAct does (ScoringFireAct).
func Open(dataDir, task, split string) (Task, error) {
	return OpenScoring(dataDir, task, split, ScoringFireAct)
}

// OpenScoring loads a task split from its standard place under dataDir, worded
// and scored by sc.
func OpenScoring(dataDir, task, split string, sc Scoring) (Task, error) {
	p, err := Path(dataDir, task, split)
	if err != nil {
		return nil, err
	}
	return Load(task, split, p, sc)
}

// Load loads a task split from an explicit file (directory for MMLU), worded
// and scored by sc.
func Load(task, split, path string, sc Scoring) (Task, error) {
	if _, err := ParseScoring(string(sc)); err != nil {
		return nil, err
	}
	switch task {
	case HotpotQA:
		return LoadHotpotQA(path, split)
	case StrategyQA:
		return LoadStrategyQA(path, split, sc)
	case Bamboogle:
		return LoadBamboogle(path, split)
	case MMLU:
		return LoadMMLU(path, split, sc)
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
