package finetune

import (
	"fmt"
	"math"
)

// GRPO's pieces that are pure arithmetic: group-normalised advantages and the
// per-token loss weights that turn llama's weighted loss into the clipped
// surrogate objective with a KL penalty.
//
// The objective maximised for each scored token i of a rollout with advantage
// A is, as in GRPO (Shao et al. 2024) and Search-R1,
//
//	J_i = min(ρ_i·A, clip(ρ_i, 1−ε, 1+ε)·A) − β·KL_i,   ρ_i = exp(lp_i − old_i),
//	KL_i = exp(ref_i − lp_i) − (ref_i − lp_i) − 1      (the k3 estimator),
//
// where lp is the current policy's log p, old the policy's at rollout and ref
// the reference model's. Its gradient is c_i·∇lp_i with
//
//	c_i = A·ρ_i·[the unclipped term is the min] − β·(1 − exp(ref_i − lp_i)),
//
// so a weighted loss −(1/n)·Σ c_i·lp_i, with c computed from log-probabilities
// outside the graph and held constant, has exactly the objective's gradient
// (divided by n, the scored tokens of the batch: a token-level mean, as DAPO
// and Dr. GRPO take it, rather than GRPO's per-sequence mean that favours
// short wrong answers).

// GroupAdvantages returns (r − mean)/(std + 1e-6) for each reward, with mean
// and std over the rewards of its group (group[i] names the question rollout
// i answered). A group whose rewards are all equal gets advantage 0: it tells
// the policy nothing.
func GroupAdvantages(rewards []float64, group []int) ([]float64, error) {
	if len(rewards) != len(group) {
		return nil, fmt.Errorf("finetune: grpo: %d rewards for %d group labels", len(rewards), len(group))
	}
	type acc struct{ n, sum, sq float64 }
	stats := map[int]*acc{}
	for i, r := range rewards {
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return nil, fmt.Errorf("finetune: grpo: reward %d is %v", i, r)
		}
		a := stats[group[i]]
		if a == nil {
			a = &acc{}
			stats[group[i]] = a
		}
		a.n++
		a.sum += r
	}
	for i, r := range rewards {
		a := stats[group[i]]
		d := r - a.sum/a.n
		a.sq += d * d
	}
	out := make([]float64, len(rewards))
	for i, r := range rewards {
		a := stats[group[i]]
		mean := a.sum / a.n
		std := math.Sqrt(a.sq / a.n) // population std, as GRPO's reference code
		if std < 1e-9 {
			continue
		}
		out[i] = (r - mean) / (std + 1e-6)
	}
	return out, nil
}

// PolicyLoss configures PolicyWeights.
type PolicyLoss struct {
	// Clip is PPO's ε: ratios outside [1−ε, 1+ε] stop pulling (default 0.2).
	Clip float64
	// KL is β, the weight of the KL penalty against the reference (0: none).
	KL float64
}

// PolicyStats summarise a batch's objective at the current policy.
type PolicyStats struct {
	Surrogate float64 // mean clipped surrogate min(ρA, clip(ρ)A) over tokens
	KL        float64 // mean k3 KL estimate against the reference (0 without one)
	Clipped   float64 // fraction of tokens whose term is clipped
}

// PolicyWeights returns the per-token loss weights c_i (see the package
// comment above) for tokens with advantages adv, current log-probabilities lp,
// rollout log-probabilities old and reference ones ref (nil without a KL
// penalty), and the objective's figures at this point.
func PolicyWeights(cfg PolicyLoss, adv, lp, old, ref []float32) ([]float32, PolicyStats, error) {
	n := len(adv)
	if len(lp) != n || len(old) != n || (ref != nil && len(ref) != n) {
		return nil, PolicyStats{}, fmt.Errorf("finetune: grpo: %d advantages, %d, %d and %d log-probabilities", n, len(lp), len(old), len(ref))
	}
	if cfg.KL != 0 && ref == nil {
		return nil, PolicyStats{}, fmt.Errorf("finetune: grpo: a KL penalty needs the reference log-probabilities")
	}
	eps := cfg.Clip
	if eps == 0 {
		eps = 0.2
	}
	w := make([]float32, n)
	var st PolicyStats
	for i := range adv {
		a := float64(adv[i])
		rho := math.Exp(float64(lp[i]) - float64(old[i]))
		clipped := math.Min(math.Max(rho, 1-eps), 1+eps)
		un, cl := rho*a, clipped*a
		st.Surrogate += math.Min(un, cl)
		// The gradient flows through the unclipped term when it is the min
		// (ties included: there the two agree in value and, at ρ inside the
		// range, in slope).
		if un <= cl {
			w[i] = float32(a * rho)
		} else {
			st.Clipped++
		}
		if ref != nil {
			d := float64(ref[i]) - float64(lp[i])
			st.KL += math.Exp(d) - d - 1
			w[i] -= float32(cfg.KL * (1 - math.Exp(d)))
		}
	}
	if n > 0 {
		st.Surrogate /= float64(n)
		st.KL /= float64(n)
		st.Clipped /= float64(n)
	}
	return w, st, nil
}
