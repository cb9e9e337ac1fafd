package finetune

import (
	"fmt"
	"math"
	"strings"
)

// Schedule names a learning-rate decay after warm-up.
type Schedule string

// Schedules.
const (
	ScheduleLinear   Schedule = "linear" // to 0 at the end (Hugging Face's default, which FireAct's alpaca-lora runs used)
	ScheduleCosine   Schedule = "cosine" // half a cosine to 0
	ScheduleConstant Schedule = "constant"
)

// ParseSchedule checks a schedule name ("" is linear).
func ParseSchedule(s string) (Schedule, error) {
	switch sc := Schedule(strings.ToLower(s)); sc {
	case ScheduleLinear, ScheduleCosine, ScheduleConstant:
		return sc, nil
	case "":
		return ScheduleLinear, nil
	}
	return "", fmt.Errorf("finetune: unknown schedule %q (want cosine, linear or constant)", s)
}

// LR returns the learning rate of step (0-based) of total: a linear warm-up over
// the first warmup steps reaching base at step warmup-1 (no step runs at 0, which
// would waste it), then the schedule's decay over the remaining steps.
func LR(s Schedule, base float64, step, total, warmup int) float64 {
	if warmup > 0 && step < warmup {
		return base * float64(step+1) / float64(warmup)
	}
	if s == ScheduleConstant {
		return base
	}
	span := total - warmup
	if span <= 0 {
		return base
	}
	p := float64(step-warmup) / float64(span)
	p = min(max(p, 0), 1)
	if s == ScheduleCosine {
		return base * 0.5 * (1 + math.Cos(math.Pi*p))
	}
	return base * (1 - p)
}

// WarmupSteps turns a warm-up setting into steps: below 1 it is a fraction of
// total, otherwise a step count. A count is not cut to the run's length, as
// transformers' warmup_steps (FireAct's 100) is not: a run shorter than its
// warm-up never reaches the peak rate, rather than reaching it sooner.
func WarmupSteps(w float64, total int) int {
	if w <= 0 {
		return 0
	}
	if w < 1 {
		return int(math.Ceil(w * float64(total)))
	}
	return int(w)
}
