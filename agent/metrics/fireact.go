package metrics

import "strings"

// FireAct's own scorers (tasks/strategyqa.py and tasks/mmlu.py of
// anchen1011/FireAct), reproduced to the letter so that numbers compare with
// the paper's. They read only the start of the answer: a prediction is never
// searched for a yes/no or a letter further in. HotpotQA and Bamboogle score
// with QA, which already is FireAct's normalize_answer EM and f1_score.

// FireActYesNo is StrategyQATask.evaluate: 1 when the lower-cased prediction
// starts with "yes" and the gold answer is true, or starts with "no" and the
// gold answer is false. As in Python, nothing is trimmed first (" yes" scores
// 0) and "nonsense" counts as no. The gold is "yes"/"no" (true/false read as
// yes/no); any other gold, such as the empty one of the unlabelled test
// split, scores 0, as Python's comparisons with True and False do.
func FireActYesNo(pred, gold string) Scores {
	p := strings.ToLower(pred)
	g := YesNo(gold)
	if strings.HasPrefix(p, "yes") && g == "yes" || strings.HasPrefix(p, "no") && g == "no" {
		return Scores{EM: 1, F1: 1}
	}
	return Scores{}
}

// FireActChoice is MMLUTask.evaluate: 1 when the lower-cased prediction starts
// with the lower-cased gold letter, so "B", "b) sheep" and "Because" all match
// gold B and "(B)" does not. An empty gold scores 0 (Python's startswith("")
// would match anything; FireAct's MMLU rows always have a letter).
func FireActChoice(pred, gold string) Scores {
	g := strings.ToLower(gold)
	if g != "" && strings.HasPrefix(strings.ToLower(pred), g) {
		return Scores{EM: 1, F1: 1}
	}
	return Scores{}
}
