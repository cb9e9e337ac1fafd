package metrics

import (
	"regexp"
	"strings"
)

// letterPatterns find the chosen option in a multiple choice answer, tried in
// order on the trimmed prediction. They accept what models write: "B", "(B)",
// "B.", "B) text", "B: text", "answer is B", "Answer: (C)", "option D". A bare
// leading "A text" is not read as an option: it is usually the article.
var letterPatterns = []*regexp.Regexp{
	regexp.MustCompile(`^\(?([A-Da-d])\)?[.):]?$`),
	regexp.MustCompile(`^\(?([A-D])[.):]\s`),
	regexp.MustCompile(`^\(([A-Da-d])\)`),
	regexp.MustCompile(`(?i)\banswer\s*(?:is|:)?\s*(?:option\s*)?\(?([A-D])\b`),
	regexp.MustCompile(`(?i)\boption\s*\(?([A-D])\b`),
}

// ChoiceLetter extracts the option letter (A–D, upper case) from a multiple
// choice prediction, or "" when none is recognisable.
func ChoiceLetter(pred string) string {
	p := strings.TrimSpace(pred)
	for _, re := range letterPatterns {
		if m := re.FindStringSubmatch(p); m != nil {
			return strings.ToUpper(m[1])
		}
	}
	return ""
}

// Choice is the lenient MMLU scorer: 1 when the letter ChoiceLetter finds is
// the gold letter.
func Choice(pred, gold string) Scores {
	l := ChoiceLetter(pred)
	if l != "" && l == strings.ToUpper(strings.TrimSpace(gold)) {
		return Scores{EM: 1, F1: 1}
	}
	return Scores{}
}

// yesNoAnswerRE finds "answer is yes", "Answer: no" further into a prediction.
var yesNoAnswerRE = regexp.MustCompile(`\banswer (?:is )?(yes|no|true|false)\b`)

// YesNo extracts "yes" or "no" from a prediction: its first word after
// normalisation (true/false count as yes/no), or an "answer is yes/no"
// phrase; "" when neither.
func YesNo(pred string) string {
	n := NormalizeAnswer(pred)
	first, _, _ := strings.Cut(n, " ")
	if v := yesNo(first); v != "" {
		return v
	}
	if m := yesNoAnswerRE.FindStringSubmatch(n); m != nil {
		return yesNo(m[1])
	}
	return ""
}

func yesNo(w string) string {
	switch w {
	case "yes", "true":
		return "yes"
	case "no", "false":
		return "no"
	}
	return ""
}

// YesNoMatch is the lenient StrategyQA scorer: the prediction's yes/no (see
// YesNo) against a gold yes/no (or true/false) answer.
func YesNoMatch(pred, gold string) Scores {
	p, g := YesNo(pred), YesNo(gold)
	if p != "" && p == g {
		return Scores{EM: 1, F1: 1}
	}
	return Scores{}
}
