package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// realRecallCase is one HotpotQA question of FireAct's released trajectories
// with the observations (real search results, mostly the first sentences of
// Wikipedia pages) of its trajectory that contain its answer: the gold
// passages a search for the question should rank first.
type realRecallCase struct {
	question string
	gold     map[string]bool // observation texts
}

var (
	observationLine = regexp.MustCompile(`(?m)^Observation(?: \d+)?: (.+)$`)
	finishAction    = regexp.MustCompile(`finish\[([^\]]+)\]`)
)

// realRecallCorpus reads FireAct's multi-task fine-tuning set (alpaca
// layout): every distinct observation (HotpotQA's, StrategyQA's and MMLU's
// trajectories) becomes a document, and every question whose trajectory
// observed its answer a case (HotpotQA's, in practice: yes/no and option
// letters are too short to count).
func realRecallCorpus(t testing.TB) ([]CorpusDoc, []realRecallCase) {
	t.Helper()
	path := "../../shared/data/fireact/finetune/alpaca_format/multitask_multimethod.json"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the real-text recall check needs FireAct's data beside the checkout: %v", err)
	}
	var rows []struct{ Instruction, Output string }
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	seen := map[string]bool{}
	asked := map[string]bool{} // the multi-method file has a question once per method
	var docs []CorpusDoc
	var cases []realRecallCase
	for _, r := range rows {
		m := finishAction.FindAllStringSubmatch(r.Output, -1)
		if len(m) == 0 {
			continue
		}
		answer := strings.ToLower(strings.TrimSpace(m[len(m)-1][1]))
		c := realRecallCase{question: strings.TrimSpace(r.Instruction), gold: map[string]bool{}}
		for _, o := range observationLine.FindAllStringSubmatch(r.Output, -1) {
			text := strings.TrimSpace(o[1])
			if len(text) < 40 || strings.HasPrefix(text, "Episode finished") {
				continue
			}
			if !seen[text] {
				seen[text] = true
				// Search results have no page title; their first words stand in.
				words := strings.Fields(text)
				docs = append(docs, CorpusDoc{Corpus: "real", Title: strings.Join(words[:min(4, len(words))], " "), Text: text})
			}
			if len(answer) > 2 && strings.Contains(strings.ToLower(text), answer) {
				c.gold[text] = true
			}
		}
		if len(c.gold) > 0 && !asked[c.question] {
			asked[c.question] = true
			cases = append(cases, c)
		}
	}
	return docs, cases
}

// TestRealTextRecall: on real text — FireAct's HotpotQA questions against the
// real search results its trajectories saw — the corpus search finds a gold
// passage in its top 1 and top 5 at least as often as the single-table BM25
// search it replaced (schema 0001-0004, kept in corpusgen_test.go).
func TestRealTextRecall(t *testing.T) {
	ctx := context.Background()
	docs, cases := realRecallCorpus(t)
	if len(docs) < 500 || len(cases) < 200 {
		t.Fatalf("%d documents and %d questions: the fixture is not the released file", len(docs), len(cases))
	}
	dir := t.TempDir()
	old, err := openLegacyCorpus(ctx, filepath.Join(dir, "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.db.Close()
	oldDocs := append([]CorpusDoc(nil), docs...)
	if err := old.add(ctx, oldDocs); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, filepath.Join(dir, "new.db"))
	if err := s.AddCorpusDocs(ctx, docs); err != nil {
		t.Fatal(err)
	}
	recall := func(search searchFunc) (r1, r5 float64) {
		for _, c := range cases {
			got, err := search(ctx, "real", c.question, 5)
			if err != nil {
				t.Fatal(err)
			}
			for rank, d := range got {
				if c.gold[d.Text] {
					if rank == 0 {
						r1++
					}
					r5++
					break
				}
			}
		}
		return r1 / float64(len(cases)), r5 / float64(len(cases))
	}
	o1, o5 := recall(old.search)
	n1, n5 := recall(s.SearchCorpus)
	t.Logf("%d documents, %d questions: recall@1 %.3f (single-table BM25 %.3f), recall@5 %.3f (%.3f)", len(docs), len(cases), n1, o1, n5, o5)
	if n1 < o1 || n5 < o5 {
		t.Errorf("recall@1 %.3f, @5 %.3f is below the old search's %.3f, %.3f", n1, n5, o1, o5)
	}
}
