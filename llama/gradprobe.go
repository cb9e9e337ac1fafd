package llama

import (
	"errors"
	"fmt"
	"math"
)

// GradientProbe is one parameter element's gradient measured two ways: as
// implied by an SGD step of the training graph, and as a central finite
// difference of an objective evaluated by the caller.
type GradientProbe struct {
	// Index is the element of the parameter that the step moved most: the
	// one where the two measures are best conditioned.
	Index int
	// Step is (before − after) / lr: the gradient the training graph applied.
	Step float64
	// FiniteDiff is (loss(x+h) − loss(x−h)) / 2h at Index.
	FiniteDiff float64
}

// Agrees reports whether the two measures agree within relTol of the finite
// difference plus absTol, and the step moved something at all (a zero step
// gradient means the parameter never reached the loss).
func (p GradientProbe) Agrees(relTol, absTol float64) bool {
	return p.Step != 0 && math.Abs(p.FiniteDiff-p.Step) <= relTol*math.Abs(p.FiniteDiff)+absTol
}

// String reads "[index]: step gradient g, finite difference f".
func (p GradientProbe) String() string {
	return fmt.Sprintf("[%d]: step gradient %.6f, finite difference %.6f", p.Index, p.Step, p.FiniteDiff)
}

// ProbeGradient checks the training graph's gradient of parameter name: it
// takes one SGD step on b at learning rate lr, picks the element that moved
// most, and compares the implied gradient with a central finite difference
// (step h) of loss, which the caller computes from the trainer's current
// parameters (Eval's loss, or any objective whose gradient b's weights are
// meant to carry). The parameter is restored to its value before the step.
// The trainer must use OptimizerSGD: AdamW's step is not lr × gradient.
//
// This is the finite-difference test of every loss the graph trains on,
// kept here so that the packages building losses on top of the trainer
// (GRPO's weighted policy loss) check theirs the same way.
func (t *Trainer) ProbeGradient(name string, b TrainBatch, lr, h float64, loss func() (float64, error)) (GradientProbe, error) {
	var p GradientProbe
	if t.opts.Optimizer != OptimizerSGD {
		return p, errors.New("llama: ProbeGradient needs a trainer with OptimizerSGD")
	}
	before, err := t.Param(name)
	if err != nil {
		return p, err
	}
	if _, err := t.Step(b, float32(lr)); err != nil {
		return p, err
	}
	after, err := t.Param(name)
	if err != nil {
		return p, err
	}
	for i := range before {
		if math.Abs(float64(after[i]-before[i])) > math.Abs(float64(after[p.Index]-before[p.Index])) {
			p.Index = i
		}
	}
	p.Step = float64(before[p.Index]-after[p.Index]) / lr
	at := func(delta float32) (float64, error) {
		v := append([]float32(nil), before...)
		v[p.Index] += delta
		if err := t.SetParam(name, v); err != nil {
			return 0, err
		}
		return loss()
	}
	plus, err := at(float32(h))
	if err == nil {
		var minus float64
		if minus, err = at(float32(-h)); err == nil {
			p.FiniteDiff = (plus - minus) / (2 * h)
		}
	}
	if rerr := t.SetParam(name, before); err == nil {
		err = rerr
	}
	return p, err
}
