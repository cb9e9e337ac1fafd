package store

import (
	"context"
	"errors"
	"math"
	"testing"
)

func TestSummaryAndDiff(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a, qs := seedRun(t, s, 4)
	b := Run{Kind: KindEval, Task: "t", Split: "dev"}
	if _, err := s.CreateRun(ctx, &b); err != nil {
		t.Fatal(err)
	}
	ins := func(run int64, qi int, ep Episode, nsteps int) {
		t.Helper()
		ep.RunID, ep.QuestionID = run, qs[qi].ID
		if err := s.InsertEpisode(ctx, &ep, testSteps(nsteps)); err != nil {
			t.Fatal(err)
		}
	}
	ins(a.ID, 0, Episode{Prediction: "0", EM: 1, F1: 1, Turns: 2, PromptTokens: 100, GeneratedTokens: 10, LatencySeconds: 2}, 2)
	ins(a.ID, 1, Episode{Prediction: "x", EM: 0, F1: 0.5, Turns: 4, PromptTokens: 300, GeneratedTokens: 30, LatencySeconds: 4, Status: EpisodeUnfinished}, 4)
	ins(a.ID, 2, Episode{Status: EpisodeError, Error: "boom", PromptTokens: 999, LatencySeconds: 100}, 1)
	ins(b.ID, 1, Episode{Prediction: "1", EM: 1, F1: 1, Turns: 1}, 1)
	ins(b.ID, 3, Episode{Prediction: "3", EM: 1, F1: 1, Turns: 1}, 1)

	sum, err := s.Summary(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if sum.Episodes != 3 || sum.ByStatus[EpisodeDone] != 1 || sum.ByStatus[EpisodeUnfinished] != 1 || sum.ByStatus[EpisodeError] != 1 {
		t.Errorf("counts: %+v", sum)
	}
	// The run's asked count is unknown: the three recorded episodes are the
	// questions, the error one scoring 0; turns, tokens and latency leave it out.
	if sum.Asked != 3 || sum.Answered != 1 || !near(sum.EM, 1.0/3) || !near(sum.F1, 0.5) || !near(sum.MeanTurns, 3) ||
		sum.PromptTokens != 400 || sum.GeneratedTokens != 40 || !near(sum.SecondsPerQ, 3) {
		t.Errorf("means: %+v", sum)
	}

	diff, err := s.Diff(ctx, a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) != 4 {
		t.Fatalf("diff rows = %d, want 4: %+v", len(diff), diff)
	}
	want := []struct {
		idx        int
		hasA, hasB bool
		emA, emB   float64
	}{{0, true, false, 1, 0}, {1, true, true, 0, 1}, {2, true, false, 0, 0}, {3, false, true, 0, 1}}
	for i, w := range want {
		d := diff[i]
		if d.Index != w.idx || d.HasA != w.hasA || d.HasB != w.hasB || d.EMA != w.emA || d.EMB != w.emB {
			t.Errorf("diff[%d] = %+v, want %+v", i, d, w)
		}
	}
	if diff[1].PredA != "x" || diff[1].PredB != "1" || diff[1].Question != "question 1?" || diff[1].Gold != "1" {
		t.Errorf("diff[1] = %+v", diff[1])
	}
}

// TestSummaryOverQuestionsAsked checks FireAct's mean, sum(rs) / len(idxs):
// a run asked 4 questions that holds a right answer, an unfinished episode and
// an error episode, and is missing the fourth, has EM 1/4.
func TestSummaryOverQuestionsAsked(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	_, qs := seedRun(t, s, 4)
	r := Run{Kind: KindEval, Task: "t", Split: "dev", Asked: 4}
	if _, err := s.CreateRun(ctx, &r); err != nil {
		t.Fatal(err)
	}
	for i, ep := range []Episode{
		{Prediction: "0", EM: 1, F1: 1, Reward: 1, Turns: 2},
		{Prediction: "x", F1: 0.5, Turns: 4, Status: EpisodeUnfinished},
		{Status: EpisodeError, Error: "boom", EM: 1, F1: 1, Reward: 1},
	} {
		ep.RunID, ep.QuestionID = r.ID, qs[i].ID
		if err := s.InsertEpisode(ctx, &ep, testSteps(1)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Run(ctx, r.ID)
	if err != nil || got.Asked != 4 {
		t.Fatalf("run asked = %d, %v; want 4", got.Asked, err)
	}
	sum, err := s.Summary(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if sum.Asked != 4 || sum.Answered != 1 || sum.Episodes != 3 || !near(sum.EM, 0.25) || !near(sum.F1, 1.5/4) ||
		!near(sum.Reward, 0.25) || !near(sum.MeanTurns, 3) {
		t.Errorf("summary = %+v, want EM 1/4 and F1 1.5/4 over 4 asked, 1 answered", sum)
	}
	if err := s.SetRunAsked(ctx, r.ID, 2); err != nil {
		t.Fatal(err)
	}
	// Fewer asked than recorded: the recorded episodes are the floor.
	if sum, _ := s.Summary(ctx, r.ID); sum.Asked != 3 || !near(sum.EM, 1.0/3) {
		t.Errorf("asked below episodes: %+v", sum)
	}
	if _, err := s.Summary(ctx, r.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("summary of a missing run: %v", err)
	}
}

func TestCacheHitRate(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if _, ok, err := s.CacheGet(ctx, "serpapi", "Paris"); err != nil || ok {
		t.Fatalf("empty cache: ok=%v err=%v", ok, err)
	}
	if err := s.CachePut(ctx, "serpapi", "  Paris  France", "capital of France"); err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.CacheGet(ctx, "serpapi", "paris france")
	if err != nil || !ok || e.Result != "capital of France" || e.Hits != 1 || e.Query != "paris france" {
		t.Fatalf("hit: %+v ok=%v err=%v", e, ok, err)
	}
	e, ok, _ = s.CacheGet(ctx, "serpapi", "PARIS\tFRANCE")
	if !ok || e.Hits != 2 || e.LastHitAt.IsZero() {
		t.Errorf("second hit: %+v", e)
	}
	if _, ok, _ := s.CacheGet(ctx, "local", "paris france"); ok {
		t.Error("cache is not per backend")
	}
	st, err := s.CacheStats(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[1].Backend != "serpapi" || st[1].Hits != 2 || st[1].Misses != 1 || st[1].Entries != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if r := st[1].HitRate(); math.Abs(r-2.0/3) > 1e-9 {
		t.Errorf("hit rate = %v, want 2/3", r)
	}
	if st[0].Backend != "local" || st[0].HitRate() != 0 || st[0].Misses != 1 {
		t.Errorf("local stats = %+v", st[0])
	}
}

func TestCorpusSearchBM25(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	docs := []CorpusDoc{
		{Corpus: "wiki", Title: "Paris", Text: "Paris is the capital and most populous city of France."},
		{Corpus: "wiki", Title: "Lyon", Text: "Lyon is a city in France, known for cuisine."},
		{Corpus: "wiki", Title: "Berlin", Text: "Berlin is the capital of Germany."},
		{Corpus: "other", Title: "Paris Hilton", Text: "Paris Hilton is a media personality."},
	}
	if err := s.AddCorpusDocs(ctx, docs); err != nil {
		t.Fatal(err)
	}
	got, err := s.SearchCorpus(ctx, "wiki", `capital of "France" (NOT) AND:`, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Title != "Paris" {
		t.Fatalf("search = %+v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Score > got[i-1].Score {
			t.Errorf("results not ranked: %+v", got)
		}
	}
	got, _ = s.SearchCorpus(ctx, "wiki", "paris", 1)
	if len(got) != 1 || got[0].Title != "Paris" {
		t.Errorf("paris in wiki = %+v", got)
	}
	if got, _ := s.SearchCorpus(ctx, "wiki", "  ", 5); len(got) != 0 {
		t.Errorf("blank query gave %+v", got)
	}
	if n, _ := s.CorpusSize(ctx, "wiki"); n != 3 {
		t.Errorf("CorpusSize = %d", n)
	}
}

func TestDatasetsAndTraining(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	r, qs := seedRun(t, s, 3)
	var ids []int64
	for _, i := range []int{2, 0} {
		ep := Episode{RunID: r.ID, QuestionID: qs[i].ID}
		if err := s.InsertEpisode(ctx, &ep, testSteps(1)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ep.ID)
	}
	d := Dataset{Name: "mix", Recipe: `{"hotpotqa":1.0}`}
	if _, err := s.CreateDataset(ctx, &d, ids); err != nil {
		t.Fatal(err)
	}
	got, err := s.DatasetByName(ctx, "mix")
	if err != nil || got.Size != 2 || got.Recipe != `{"hotpotqa":1.0}` {
		t.Fatalf("dataset = %+v, %v", got, err)
	}
	eids, _ := s.DatasetEpisodeIDs(ctx, d.ID)
	if len(eids) != 2 || eids[0] != ids[0] || eids[1] != ids[1] {
		t.Errorf("dataset episodes = %v, want %v (in given order)", eids, ids)
	}
	if _, err := s.CreateDataset(ctx, &Dataset{Name: "bad"}, []int64{12345}); err == nil {
		t.Error("dataset with a missing episode accepted")
	}
	if _, err := s.DatasetByName(ctx, "bad"); err == nil {
		t.Error("failed dataset left behind")
	}

	tr := Run{Kind: KindTrain, Model: "m.gguf"}
	if _, err := s.CreateRun(ctx, &tr); err != nil {
		t.Fatal(err)
	}
	job := TrainingRun{RunID: tr.ID, DatasetID: d.ID, Hyperparams: `{"lr":0.0002,"rank":8,"wandb_api_key":"w"}`}
	if _, err := s.CreateTrainingRun(ctx, &job); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLossPoints(ctx, job.ID, []LossPoint{{Step: 1, Loss: 2.5, LR: 2e-4, Tokens: 512}, {Step: 2, Loss: 2.0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLossPoints(ctx, job.ID, []LossPoint{{Step: 2, Loss: 1.9}, {Step: 3, Loss: 1.5}}); err != nil {
		t.Fatal(err)
	}
	curve, _ := s.LossCurve(ctx, job.ID)
	if len(curve) != 3 || curve[1].Loss != 1.9 || curve[0].Tokens != 512 {
		t.Errorf("loss curve = %+v", curve)
	}
	if err := s.FinishTrainingRun(ctx, job.ID, StatusDone, "out.gguf"); err != nil {
		t.Fatal(err)
	}
	gotJob, err := s.TrainingRun(ctx, job.ID)
	if err != nil || gotJob.Status != StatusDone || gotJob.OutputAdapter != "out.gguf" || gotJob.DatasetID != d.ID ||
		gotJob.Hyperparams != `{"lr":0.0002,"rank":8,"wandb_api_key":"[redacted]"}` {
		t.Errorf("training run = %+v, %v", gotJob, err)
	}
}
