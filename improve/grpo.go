package improve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/atomicfile"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/store"
)

// Learners: how a round learns from its samples.
const (
	// LearnerRejection keeps the samples whose reward passes the threshold and
	// fine-tunes on them with the teacher's data (STaR, ReST-EM).
	LearnerRejection = "rejection"
	// LearnerGRPO takes policy-gradient steps on every sample of the round,
	// weighted by its reward normalised within its question's group of K
	// (GRPO, as Search-R1 trains search agents), with PPO's clipping and an
	// optional KL penalty against the round-0 student.
	LearnerGRPO = "grpo"
)

// GRPOConfig configures LearnerGRPO.
type GRPOConfig struct {
	// Clip is PPO's ε (default 0.2); KL the penalty's β against the round-0
	// student (Init, or the base without one; 0: no penalty).
	Clip float64 `json:"clip"`
	KL   float64 `json:"kl"`
	// Epochs are passes over a round's samples (default 1: on-policy, every
	// ratio starts at 1); LR the AdamW learning rate (default 1e-4).
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
	// Reward is "em" (default) or "f1"; FormatPenalty is subtracted from the
	// reward of an episode that did not finish with an answer (an error, a
	// turn that did not parse, no finish within the turns).
	Reward        string  `json:"reward"`
	FormatPenalty float64 `json:"format_penalty"`
	// MaxTokens bounds a packed micro-batch (default 1024); Cutoff an example
	// (default MaxTokens).
	MaxTokens int `json:"max_tokens"`
	Cutoff    int `json:"cutoff"`
	// Rank, Alpha and Targets are the adapter's when there is no adapter to
	// start from (defaults 8, 2·rank, q,v).
	Rank    int     `json:"rank,omitempty"`
	Alpha   float64 `json:"alpha,omitempty"`
	Targets string  `json:"targets,omitempty"`
}

func (g *GRPOConfig) defaults() error {
	if g.Clip == 0 {
		g.Clip = 0.2
	}
	if g.Epochs <= 0 {
		g.Epochs = 1
	}
	if g.LR == 0 {
		g.LR = 1e-4
	}
	if g.Reward == "" {
		g.Reward = "em"
	}
	if g.MaxTokens <= 0 {
		g.MaxTokens = 1024
	}
	if g.Cutoff <= 0 || g.Cutoff > g.MaxTokens {
		g.Cutoff = g.MaxTokens
	}
	switch {
	case g.Reward != "em" && g.Reward != "f1":
		return fmt.Errorf("improve: grpo reward %q: em or f1", g.Reward)
	case g.Clip < 0 || g.Clip >= 1, g.KL < 0, g.LR < 0, g.FormatPenalty < 0:
		return fmt.Errorf("improve: grpo: clip %g (in [0, 1)), kl %g, lr %g and format penalty %g (>= 0)", g.Clip, g.KL, g.LR, g.FormatPenalty)
	}
	return nil
}

// rollout is one sampled episode made a training example.
type rollout struct {
	ex       finetune.Example
	episode  int64
	question int64
	reward   float64
	adv      float32
	old, ref []float32 // log p of the example's scored tokens
}

// grpoTrain is a GRPO round's training phase: the round's samples, their
// group-normalised rewards, and Epochs passes of clipped policy-gradient
// steps on the adapter the round sampled with. Every step is checkpointed
// (finetune.StepCheckpoint: adapter, AdamW moments, step counter), so a
// round that stops in this phase continues after its last finished step:
// the samples are read again from the store, the ratios' denominators and the
// reference's log-probabilities are recomputed from the same adapters, and
// the batches come in the same order, so the adapter written is the one an
// uninterrupted phase writes.
func (j *job) grpoTrain(ctx context.Context, r *store.Round) error {
	c := &j.cfg
	t0 := time.Now()
	rolls, err := j.rollouts(ctx, r)
	if err != nil {
		return err
	}
	rewards := make([]float64, len(rolls))
	groups := make([]int, len(rolls))
	for i, ro := range rolls {
		rewards[i], groups[i] = ro.reward, int(ro.question)
	}
	adv, err := finetune.GroupAdvantages(rewards, groups)
	if err != nil {
		return err
	}
	var used []*rollout
	for i := range rolls {
		if rolls[i].adv = float32(adv[i]); rolls[i].adv != 0 {
			used = append(used, &rolls[i])
		}
	}
	r.Kept = len(used)
	fmt.Fprintf(c.Log, "improve: round %d: %d samples, mean reward %.3f, %d in groups with a reward signal\n",
		r.Round, len(rolls), mean(rewards), len(used))
	out := j.adapterPath(r.Round)
	if len(used) == 0 {
		// Every group answered alike: no gradient. The adapter carries over.
		if r.AdapterIn == "" {
			return errors.New("no sample group has a reward signal (all right or all wrong) and there is no adapter to carry over; raise K or the temperature")
		}
		if err := copyAdapter(r.AdapterIn, out); err != nil {
			return err
		}
		return j.recordAdapter(r, out, 0, t0)
	}
	fp, err := j.grpoFingerprint(r, used)
	if err != nil {
		return err
	}
	ck, err := finetune.OpenStepCheckpoint(finetune.CheckpointDir(out), fp)
	if err != nil {
		return err
	}
	if ck.Done() {
		// Finished before the round could record it (a kill in between).
		if err := ck.VerifyOutput(out); err != nil {
			return err
		}
		if err := j.finishRecords(ctx, ck, out); err != nil {
			return err
		}
		_, r.TrainingRunID = ck.Records()
		r.TrainLoss = ck.Loss()
		return j.recordAdapter(r, out, ck.Step(), t0)
	}
	if err := j.grpoSteps(ctx, r, used, ck, out, t0); err != nil {
		return err
	}
	return j.recordAdapter(r, out, ck.Step(), t0)
}

// grpoFingerprint names what decides a GRPO phase's result, so that its
// checkpoint is continued only by the same phase: the job's configuration,
// the round, the adapter it starts from and the samples it trains on with
// their rewards.
func (j *job) grpoFingerprint(r *store.Round, used []*rollout) (string, error) {
	in := ""
	if r.AdapterIn != "" {
		h, err := store.FileHash(r.AdapterIn)
		if err != nil {
			return "", err
		}
		in = h
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nround %d\nadapter %s\n", j.idJSON, r.Round, in)
	for _, ro := range used {
		fmt.Fprintf(&b, "%d %g %d\n", ro.episode, ro.reward, len(ro.ex.Tokens))
	}
	return agent.TextHash(b.String())[:16], nil
}

// grpoRecords finds the run and training run a checkpointed phase logs to,
// or (starting the phase) replaces an earlier attempt's with new ones.
func (j *job) grpoRecords(ctx context.Context, r *store.Round, ck *finetune.StepCheckpoint, out string) (int64, error) {
	c := &j.cfg
	name := fmt.Sprintf("%s/r%d/grpo", c.Name, r.Round)
	runID, tid := ck.Records()
	old, err := j.s.RunByName(ctx, name)
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return 0, err
	case tid != 0 && err == nil && old.ID == runID:
		return tid, j.s.SetRunStatus(ctx, runID, store.StatusRunning)
	case ck.Step() > 0:
		return 0, fmt.Errorf("the checkpoint in %s is at step %d of run %d, which the store does not hold as %q; remove the checkpoint to redo the phase",
			finetune.CheckpointDir(out), ck.Step(), runID, name)
	case err == nil:
		// An attempt that stopped before its first step: its record goes.
		if err := j.s.DeleteRun(ctx, old.ID); err != nil {
			return 0, err
		}
	}
	run := store.Run{Name: name, Kind: store.KindTrain, Config: j.idJSON,
		Model: c.Base, ModelHash: j.baseHash, Adapter: out, Seed: c.Seed, Status: store.StatusRunning}
	if _, err := j.s.CreateRun(ctx, &run); err != nil {
		return 0, err
	}
	tid, err = j.s.CreateTrainingRun(ctx, &store.TrainingRun{RunID: run.ID, Hyperparams: j.idJSON, OutputAdapter: out, Status: store.StatusRunning})
	if err != nil {
		return 0, err
	}
	return tid, ck.Begin(run.ID, tid)
}

// grpoSteps takes the phase's policy-gradient steps after the checkpoint's
// last one, checkpointing each, and writes the adapter.
func (j *job) grpoSteps(ctx context.Context, r *store.Round, used []*rollout, ck *finetune.StepCheckpoint, out string, t0 time.Time) error {
	c := &j.cfg
	g := c.GRPO
	opts, err := j.trainerOptions(r.AdapterIn)
	if err != nil {
		return err
	}
	if g.KL > 0 {
		// The reference's log-probabilities, from a trainer holding the
		// round-0 student, freed before the policy's is made.
		refOpts, err := j.trainerOptions(c.Init)
		if err != nil {
			return err
		}
		if err := withTrainer(j.m, refOpts, func(tr *llama.Trainer) error {
			for _, ro := range used {
				if ro.ref, err = tr.TokenLogProbs(finetune.Batch([]finetune.Example{ro.ex}, []int{0})); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("reference log-probabilities: %w", err)
		}
	}
	opts.AdapterMetadata = j.grpoMetadata(r.AdapterIn)
	tr, err := llama.NewTrainer(j.m, opts)
	if err != nil {
		return err
	}
	defer tr.Close()
	// The rollout policy is the trainer's starting point: its
	// log-probabilities are the ratios' denominators, computed by the same
	// graph that steps (the engine's, recorded at sampling, agree with them
	// to float rounding but are over the generated tokens, not the
	// re-tokenised training text). A resumed phase computes them before
	// restoring its checkpoint, from the same adapter.
	for _, ro := range used {
		if ro.old, err = tr.TokenLogProbs(finetune.Batch([]finetune.Example{ro.ex}, []int{0})); err != nil {
			return err
		}
	}
	if err := ck.Restore(tr); err != nil {
		return err
	}
	if ck.Step() > 0 {
		fmt.Fprintf(c.Log, "improve: round %d: grpo resumes after step %d\n", r.Round, ck.Step())
	}
	tid, err := j.grpoRecords(ctx, r, ck, out)
	if err != nil {
		return err
	}
	steps, loss, err := j.grpoLoop(ctx, r, tr, used, ck, tid, t0)
	if err != nil {
		// The records say how the phase stopped (with a context that
		// outlives a cancel); the checkpoint says where.
		status := store.StatusFailed
		if ctx.Err() != nil {
			status = store.StatusInterrupted
		}
		bg := context.WithoutCancel(ctx)
		runID, _ := ck.Records()
		return errors.Join(err, j.s.FinishTrainingRun(bg, tid, status, ""), j.s.SetRunStatus(bg, runID, status))
	}
	if err := ck.Finish(tr, out, steps, loss); err != nil {
		return err
	}
	if err := j.finishRecords(ctx, ck, out); err != nil {
		return err
	}
	r.TrainingRunID, r.TrainLoss = tid, loss
	return nil
}

// finishRecords marks the run and training run of a finished phase done.
func (j *job) finishRecords(ctx context.Context, ck *finetune.StepCheckpoint, out string) error {
	runID, tid := ck.Records()
	if err := j.s.FinishTrainingRun(ctx, tid, store.StatusDone, out); err != nil {
		return err
	}
	return j.s.SetRunStatus(ctx, runID, store.StatusDone)
}

// grpoLoop takes the steps after the checkpoint's last one on tr,
// checkpointing each but the last, logging them to training run tid; it
// returns the phase's steps and the last one's loss.
func (j *job) grpoLoop(ctx context.Context, r *store.Round, tr *llama.Trainer, used []*rollout, ck *finetune.StepCheckpoint, tid int64, t0 time.Time) (int, float64, error) {
	c := &j.cfg
	g := c.GRPO
	done, prior := ck.Step(), ck.Elapsed()
	exs := make([]finetune.Example, len(used))
	lengths := make([]int, len(used))
	for i, ro := range used {
		exs[i], lengths[i] = ro.ex, len(ro.ex.Tokens)
	}
	// The whole plan is drawn first, so that a resumed phase skips the
	// batches done before its checkpoint in the order they were taken.
	rng := rand.New(rand.NewPCG(uint64(c.Seed), uint64(r.Round)))
	var plan [][]int
	for ep := 0; ep < g.Epochs; ep++ {
		plan = append(plan, finetune.Pack(lengths, rng.Perm(len(used)), g.MaxTokens)...)
	}
	last := ck.Loss()
	for step := done + 1; step <= len(plan); step++ {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		pack := plan[step-1]
		b := finetune.Batch(exs, pack)
		a, old, ref := policyInputs(pack, used, g.KL > 0)
		lp, err := tr.TokenLogProbs(b)
		if err != nil {
			return 0, 0, err
		}
		w, st, err := finetune.PolicyWeights(finetune.PolicyLoss{Clip: g.Clip, KL: g.KL}, a, lp, old, ref)
		if err != nil {
			return 0, 0, err
		}
		if b.Weights, err = scatterWeights(b, w); err != nil {
			return 0, 0, err
		}
		res, err := tr.Step(b, float32(g.LR))
		if err != nil {
			return 0, 0, err
		}
		ps := policyStep(step, g.KL, pack, used, len(a), st)
		last = -ps.Objective
		elapsed := prior + time.Since(t0).Seconds()
		if err := j.s.AddLossPoints(ctx, tid, []store.LossPoint{{Step: step, Loss: last, LR: g.LR, Tokens: res.Scored,
			ElapsedSeconds: elapsed}}); err != nil {
			return 0, 0, err
		}
		if err := j.s.AddPolicySteps(ctx, tid, []store.PolicyStep{ps}); err != nil {
			return 0, 0, err
		}
		if step < len(plan) {
			// After the last step Finish writes the adapter; a kill before
			// it redoes that step from the previous checkpoint.
			if err := ck.Save(tr, step, last, elapsed); err != nil {
				return 0, 0, err
			}
		}
		fmt.Fprintf(c.Log, "improve: round %d: grpo step %d: surrogate %.4f, KL %.4f, clipped %.0f%%\n",
			r.Round, step, st.Surrogate, st.KL, 100*st.Clipped)
		j.event(Event{Round: r.Round, Phase: store.PhaseTrain, Done: step - done, Total: len(plan) - done})
	}
	return len(plan), last, nil
}

// policyInputs are PolicyWeights' per-token inputs for the rollouts pack of
// used: each token's advantage, rollout log-probability and, with a
// reference, the reference's.
func policyInputs(pack []int, used []*rollout, withRef bool) (adv, old, ref []float32) {
	for _, k := range pack {
		for range used[k].old {
			adv = append(adv, used[k].adv)
		}
		old = append(old, used[k].old...)
		if withRef {
			ref = append(ref, used[k].ref...)
		}
	}
	return adv, old, ref
}

// policyStep is the store's record of a step on the rollouts pack of used,
// tokens scored, whose batch PolicyWeights summarised as st; beta is the KL
// penalty's weight (0: no reference, so no KL to record).
func policyStep(step int, beta float64, pack []int, used []*rollout, tokens int, st finetune.PolicyStats) store.PolicyStep {
	var reward float64
	for _, k := range pack {
		reward += used[k].reward
	}
	return store.PolicyStep{Step: step, Rollouts: len(pack), Tokens: tokens, Reward: reward / float64(len(pack)),
		Surrogate: st.Surrogate, Clipped: st.Clipped, KL: st.KL, HasKL: beta > 0,
		Objective: st.Surrogate - beta*st.KL}
}

// recordAdapter records the round's adapter.
func (j *job) recordAdapter(r *store.Round, path string, steps int, t0 time.Time) error {
	h, err := store.FileHash(path)
	if err != nil {
		return err
	}
	r.Adapter, r.AdapterHash = path, h
	r.TrainSeconds += time.Since(t0).Seconds()
	fmt.Fprintf(j.cfg.Log, "improve: round %d: %d grpo steps, adapter %s\n", r.Round, steps, path)
	return nil
}

// rollouts are the round's sampled episodes as training examples in the
// prompt format they were sampled with, the agent's own tokens scored and
// the question and observations not (Search-R1 found masking the retrieved
// text essential to stable training).
func (j *job) rollouts(ctx context.Context, r *store.Round) ([]rollout, error) {
	c := &j.cfg
	tmpl := finetune.TemplateAlpaca
	switch c.Format {
	case agent.FormatAlpaca:
	case agent.FormatChat:
		tmpl = finetune.TemplateChat
	default:
		return nil, fmt.Errorf("grpo trains on the text the student was prompted with; format %q has no training template (use alpaca or chat)", c.Format)
	}
	eo := finetune.EncodeOptions{Cutoff: c.GRPO.Cutoff, NoEOS: tmpl == finetune.TemplateChat}
	var out []rollout
	r.Samples, r.Passed = 0, 0
	solved := map[int64]bool{}
	for k := 0; k < c.K; k++ {
		run, err := j.s.RunByName(ctx, j.sampleRun(r.Round, k))
		if err != nil {
			return nil, err
		}
		eps, err := j.s.Episodes(ctx, run.ID)
		if err != nil {
			return nil, err
		}
		for _, ep := range eps {
			r.Samples++
			reward := ep.EM
			if c.GRPO.Reward == "f1" {
				reward = ep.F1
			}
			if ep.Status != store.EpisodeDone {
				reward -= c.GRPO.FormatPenalty
			}
			if ep.Status == store.EpisodeDone && ep.EM >= 1 {
				r.Passed++
				solved[ep.QuestionID] = true
			}
			t, err := j.s.Trajectory(ctx, ep.ID)
			if err != nil {
				return nil, err
			}
			segs, err := finetune.Segments(t, tmpl, j.m, "")
			if err != nil {
				return nil, fmt.Errorf("episode %d: %w", ep.ID, err)
			}
			ex, err := finetune.Encode(j.m, segs, eo)
			if err != nil {
				return nil, fmt.Errorf("episode %d: %w", ep.ID, err)
			}
			if ex.Scored() == 0 {
				continue // cut off before the agent wrote anything
			}
			out = append(out, rollout{ex: ex, episode: ep.ID, question: ep.QuestionID, reward: reward})
		}
	}
	r.Solved = len(solved)
	return out, nil
}

// trainerOptions are the trainer's settings for continuing adapter (or, for
// "", for a fresh one with the configured rank and targets).
func (j *job) trainerOptions(adapter string) (llama.TrainerOptions, error) {
	c := &j.cfg
	o := llama.TrainerOptions{Seed: uint32(c.Seed), Threads: c.Threads, ResumeAdapter: adapter}
	if adapter == "" {
		o.Rank, o.Alpha = c.GRPO.Rank, float32(c.GRPO.Alpha)
		if o.Rank <= 0 {
			o.Rank = 8
		}
		t := c.GRPO.Targets
		if t == "" {
			t = "q,v"
		}
		var err error
		if o.Targets, err = llama.ParseTargets(t); err != nil {
			return o, err
		}
		return o, nil
	}
	info, err := llama.ReadAdapterInfo(c.Base, adapter)
	if err != nil {
		return o, err
	}
	o.Rank, o.Alpha = info.Rank, info.Alpha
	if o.Targets, err = llama.TargetsOf(info.Targets); err != nil {
		return o, fmt.Errorf("adapter %s: %w", adapter, err)
	}
	return o, nil
}

// grpoMetadata is the usage metadata of a GRPO round's adapter: that of the
// adapter it continues (format, template, base), with the recipe named.
func (j *job) grpoMetadata(prev string) map[string]string {
	md := map[string]string{}
	if prev != "" {
		if f, err := gguf.Read(prev); err == nil {
			for _, kv := range f.KVs {
				if v, ok := f.String(kv.Key); ok && strings.HasPrefix(kv.Key, "fireact.") {
					md[kv.Key] = v
				}
			}
		}
	}
	if _, ok := md[finetune.KeyFormat]; !ok {
		md[finetune.KeyFormat] = string(j.cfg.Format)
	}
	md[finetune.KeyBaseSHA256] = j.baseHash
	md[finetune.KeyRecipe] = "grpo"
	return md
}

// scatterWeights puts the per-scored-token weights w on b's scored tokens
// (a target that is not its sequence's first token), in order.
func scatterWeights(b llama.TrainBatch, w []float32) ([]float32, error) {
	starts := map[int]bool{0: true}
	for _, s := range b.SeqStart {
		starts[s] = true
	}
	out := make([]float32, len(b.Tokens))
	k := 0
	for i := range b.Tokens {
		if b.Target[i] && !starts[i] {
			if k == len(w) {
				return nil, errors.New("more scored tokens than weights")
			}
			out[i] = w[k]
			k++
		}
	}
	if k != len(w) {
		return nil, fmt.Errorf("%d weights for %d scored tokens", len(w), k)
	}
	return out, nil
}

func withTrainer(m *llama.Model, o llama.TrainerOptions, f func(*llama.Trainer) error) error {
	tr, err := llama.NewTrainer(m, o)
	if err != nil {
		return err
	}
	defer tr.Close()
	return f(tr)
}

func copyAdapter(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(to, b)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
