package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Round phases: where a running improve round stands.
const (
	PhaseSample = "sample" // the student samples k trajectories per train question
	PhaseSelect = "select" // samples at or above the threshold are kept and mixed with the teacher data
	PhaseTrain  = "train"  // the adapter is retrained from the previous one
	PhaseEval   = "eval"   // the new adapter is evaluated on dev
	PhaseDone   = "done"
)

// Round is one round of an improve job (rejection sampling): what the student
// sampled, how much of it passed the reward threshold and was kept, the
// training mix, the adapter written and its dev score. Round 0 is the starting
// student, evaluated only.
type Round struct {
	Job    string // the job's name
	Round  int
	Status RunStatus
	Phase  string // PhaseSample ... PhaseDone
	Config string // the job's configuration (JSON)

	AdapterIn   string // adapter the round sampled with and trained from ("" : none)
	Adapter     string // adapter the round wrote
	AdapterHash string

	Questions int // train questions sampled
	K         int // samples per question
	Samples   int // sampled episodes recorded
	Passed    int // samples at or above the reward threshold
	Kept      int // distinct passed trajectories
	Solved    int // questions with at least one kept sample
	// SelfExamples and TeacherExamples are the training mix: kept samples and
	// teacher episodes after the mixing ratios.
	SelfExamples    int
	TeacherExamples int
	// PromptTokens are the prompt tokens the sampling submitted to the engine,
	// PromptDecoded those it decoded: the rest came from KV cells shared with
	// another request (the k copies of a question, a turn's earlier prompt).
	PromptTokens  int64
	PromptDecoded int64

	DatasetID     int64 // the training mix (0: none yet)
	TrainingRunID int64
	DevRunID      int64
	DevEM, DevF1  float64
	TrainLoss     float64

	SampleSeconds, TrainSeconds, EvalSeconds float64

	CreatedAt  time.Time
	FinishedAt time.Time // zero until done
}

var validPhases = map[string]bool{"": true, PhaseSample: true, PhaseSelect: true, PhaseTrain: true, PhaseEval: true, PhaseDone: true}

// SaveRound records r, replacing the job's row for the same round (its
// creation time is kept), so that every phase of a round can save its counts
// as it finishes and a resumed round overwrites them.
func (s *Store) SaveRound(ctx context.Context, r *Round) error {
	switch {
	case strings.TrimSpace(r.Job) == "":
		return errors.New("store: save round: empty job name")
	case r.Round < 0:
		return fmt.Errorf("store: save round %s/%d: negative round", r.Job, r.Round)
	case !validPhases[r.Phase]:
		return fmt.Errorf("store: save round %s/%d: unknown phase %q", r.Job, r.Round, r.Phase)
	}
	if r.Status == "" {
		r.Status = StatusRunning
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC()
	}
	cfg, err := RedactConfig(jsonOrEmpty(r.Config))
	if err != nil {
		return fmt.Errorf("store: save round %s/%d: %w", r.Job, r.Round, err)
	}
	r.Config = cfg
	_, err = s.exec(ctx, `INSERT INTO improve_rounds (job, round, status, phase, config, adapter_in, adapter,
		adapter_hash, questions, k, samples, passed, kept, solved, self_examples, teacher_examples, prompt_tokens,
		prompt_decoded, dataset_id, training_run_id, dev_run_id, dev_em, dev_f1, train_loss, sample_s, train_s, eval_s,
		created_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (job, round) DO UPDATE SET status = excluded.status, phase = excluded.phase, config = excluded.config,
		adapter_in = excluded.adapter_in, adapter = excluded.adapter, adapter_hash = excluded.adapter_hash,
		questions = excluded.questions, k = excluded.k, samples = excluded.samples, passed = excluded.passed,
		kept = excluded.kept, solved = excluded.solved, self_examples = excluded.self_examples,
		teacher_examples = excluded.teacher_examples, prompt_tokens = excluded.prompt_tokens,
		prompt_decoded = excluded.prompt_decoded, dataset_id = excluded.dataset_id,
		training_run_id = excluded.training_run_id, dev_run_id = excluded.dev_run_id, dev_em = excluded.dev_em,
		dev_f1 = excluded.dev_f1, train_loss = excluded.train_loss, sample_s = excluded.sample_s,
		train_s = excluded.train_s, eval_s = excluded.eval_s, finished_at = excluded.finished_at`,
		r.Job, r.Round, r.Status, r.Phase, r.Config, r.AdapterIn, r.Adapter, r.AdapterHash, r.Questions, r.K, r.Samples,
		r.Passed, r.Kept, r.Solved, r.SelfExamples, r.TeacherExamples, r.PromptTokens, r.PromptDecoded,
		nullID(r.DatasetID), nullID(r.TrainingRunID), nullID(r.DevRunID), r.DevEM, r.DevF1, r.TrainLoss,
		r.SampleSeconds, r.TrainSeconds, r.EvalSeconds, r.CreatedAt.UTC(), nullTime(r.FinishedAt))
	if err != nil {
		return fmt.Errorf("store: save round %s/%d: %w", r.Job, r.Round, err)
	}
	return nil
}

// nullID maps the zero id to NULL for a foreign key.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Rounds returns the rounds of a job in round order, or of every job (job
// "") ordered by job then round. A job without rounds gives an empty list.
func (s *Store) Rounds(ctx context.Context, job string) ([]Round, error) {
	q := `SELECT job, round, status, phase, config, adapter_in, adapter, adapter_hash, questions, k, samples, passed,
		kept, solved, self_examples, teacher_examples, prompt_tokens, prompt_decoded, dataset_id, training_run_id,
		dev_run_id, dev_em, dev_f1, train_loss, sample_s, train_s, eval_s, created_at, finished_at FROM improve_rounds`
	var args []any
	if job != "" {
		q += ` WHERE job = ?`
		args = append(args, job)
	}
	q += ` ORDER BY job, round`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: rounds of %q: %w", job, err)
	}
	defer rows.Close()
	var out []Round
	for rows.Next() {
		var r Round
		var dataset, trun, dev sql.NullInt64
		var finished sql.NullTime
		if err := rows.Scan(&r.Job, &r.Round, &r.Status, &r.Phase, &r.Config, &r.AdapterIn, &r.Adapter, &r.AdapterHash,
			&r.Questions, &r.K, &r.Samples, &r.Passed, &r.Kept, &r.Solved, &r.SelfExamples, &r.TeacherExamples,
			&r.PromptTokens, &r.PromptDecoded, &dataset, &trun, &dev, &r.DevEM, &r.DevF1, &r.TrainLoss,
			&r.SampleSeconds, &r.TrainSeconds, &r.EvalSeconds, &r.CreatedAt, &finished); err != nil {
			return nil, fmt.Errorf("store: rounds of %q: %w", job, err)
		}
		r.DatasetID, r.TrainingRunID, r.DevRunID = dataset.Int64, trun.Int64, dev.Int64
		r.FinishedAt = timeOrZero(finished)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rounds of %q: %w", job, err)
	}
	return out, nil
}
