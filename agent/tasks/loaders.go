package tasks

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadHotpotQA loads FireAct's HotpotQA file: a JSON array of {question,
// answer, type, ...}. Fields other than question and answer go to Metadata
// ("_id" also becomes the ID).
func LoadHotpotQA(path, split string) (*Static, error) {
	var rows []map[string]any
	if err := readJSON(path, &rows); err != nil {
		return nil, fmt.Errorf("tasks: hotpotqa %s: %w", path, err)
	}
	t := &Static{TaskName: HotpotQA, SplitName: split, Scorer: ScorerFor(HotpotQA)}
	for i, r := range rows {
		q, ok := r["question"].(string)
		if !ok {
			return nil, fmt.Errorf("tasks: hotpotqa %s: element %d has no question", path, i)
		}
		gold, _ := r["answer"].(string)
		id, _ := r["_id"].(string)
		meta := map[string]any{}
		for _, k := range sortedKeys(r) {
			if k != "question" && k != "answer" && k != "_id" {
				meta[k] = r[k]
			}
		}
		t.Questions = append(t.Questions, Question{Index: i, ID: id, Text: q, Gold: gold, Metadata: meta})
	}
	return t, nil
}

// LoadStrategyQA loads a StrategyQA file: a JSON array of {qid, term,
// description, question, answer (bool), facts, decomposition, evidence}. The
// gold answer is "yes"/"no" ("" in the test split, which has none); term,
// description, facts and decomposition go to Metadata (evidence is bulky and
// unused). sc chooses the scorer.
func LoadStrategyQA(path, split string, sc Scoring) (*Static, error) {
	var rows []struct {
		QID           string   `json:"qid"`
		Term          string   `json:"term"`
		Description   string   `json:"description"`
		Question      string   `json:"question"`
		Answer        *bool    `json:"answer"`
		Facts         []string `json:"facts"`
		Decomposition []string `json:"decomposition"`
	}
	if err := readJSON(path, &rows); err != nil {
		return nil, fmt.Errorf("tasks: strategyqa %s: %w", path, err)
	}
	t := &Static{TaskName: StrategyQA, SplitName: split, Scorer: sc.Scorer(StrategyQA)}
	for i, r := range rows {
		gold := ""
		if r.Answer != nil {
			gold = "no"
			if *r.Answer {
				gold = "yes"
			}
		}
		meta := map[string]any{}
		if r.Term != "" {
			meta["term"] = r.Term
		}
		if r.Description != "" {
			meta["description"] = r.Description
		}
		if len(r.Facts) > 0 {
			meta["facts"] = r.Facts
		}
		if len(r.Decomposition) > 0 {
			meta["decomposition"] = r.Decomposition
		}
		t.Questions = append(t.Questions, Question{Index: i, ID: r.QID, Text: r.Question, Gold: gold, Metadata: meta})
	}
	return t, nil
}

// LoadBamboogle loads Bamboogle's CSV (header Question,Answer).
func LoadBamboogle(path, split string) (*Static, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tasks: bamboogle: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	// Some questions have bare quotes ("Quit India" speech) in unquoted fields,
	// which Python's csv module (FireAct's reader) accepts.
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("tasks: bamboogle %s: header: %w", path, err)
	}
	qcol, acol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "question":
			qcol = i
		case "answer":
			acol = i
		}
	}
	if qcol < 0 || acol < 0 {
		return nil, fmt.Errorf("tasks: bamboogle %s: header %v lacks Question and Answer", path, header)
	}
	t := &Static{TaskName: Bamboogle, SplitName: split, Scorer: ScorerFor(Bamboogle)}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tasks: bamboogle %s: %w", path, err)
		}
		t.Questions = append(t.Questions, Question{Index: len(t.Questions), Text: rec[qcol], Gold: rec[acol],
			Metadata: map[string]any{}})
	}
	return t, nil
}

// LoadMMLU loads an MMLU split directory of <subject>_<split>.csv files, each
// row question,A,B,C,D,answer with no header. Files are read in name order.
// The question text is the stem followed by the options, one per line; with
// ScoringFireAct the stem has FireAct's "Question: " prefix, as its MMLUTask
// and its gpt-format fine-tuning data write it:
//
//	Question: <stem>
//	A. <option A>
//	B. <option B>
//	C. <option C>
//	D. <option D>
//
// The gold answer is the letter; Metadata holds subject and options (without
// the prefix).
func LoadMMLU(dir, split string, sc Scoring) (*Static, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, fmt.Errorf("tasks: mmlu %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("tasks: mmlu %s: no csv files", dir)
	}
	sort.Strings(files)
	t := &Static{TaskName: MMLU, SplitName: split, Scorer: sc.Scorer(MMLU)}
	for _, file := range files {
		subject := strings.TrimSuffix(filepath.Base(file), ".csv")
		subject = strings.TrimSuffix(subject, "_"+split)
		if err := readMMLU(file, subject, sc.mmluPrefix(), t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func readMMLU(file, subject, prefix string, t *Static) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("tasks: mmlu: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 6
	for row := 0; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tasks: mmlu %s: %w", file, err)
		}
		gold := strings.TrimSpace(rec[5])
		if len(gold) != 1 || gold[0] < 'A' || gold[0] > 'D' {
			return fmt.Errorf("tasks: mmlu %s: row %d: answer %q is not A-D", file, row+1, rec[5])
		}
		opts := rec[1:5]
		var b strings.Builder
		b.WriteString(prefix)
		b.WriteString(rec[0])
		for i, o := range opts {
			fmt.Fprintf(&b, "\n%c. %s", 'A'+i, o)
		}
		t.Questions = append(t.Questions, Question{
			Index:    len(t.Questions),
			ID:       fmt.Sprintf("%s/%d", subject, row),
			Text:     b.String(),
			Gold:     gold,
			Metadata: map[string]any{"subject": subject, "options": append([]string(nil), opts...)},
		})
	}
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
