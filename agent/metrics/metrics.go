// Package metrics scores predictions: exact match and token F1 over
// SQuAD/HotpotQA-normalised answers (FireAct's, for HotpotQA and Bamboogle),
// FireAct's own StrategyQA and MMLU scorers (FireActYesNo, FireActChoice:
// the start of the answer only), and lenient ones for those two tasks
// (YesNoMatch, Choice) that also read "the answer is B" or "(B)".
package metrics

import (
	"strings"
	"unicode"
)

// Scores are the metrics of one prediction. For letter and yes/no tasks EM and
// F1 are both the match (0 or 1).
type Scores struct {
	EM float64
	F1 float64
}

// asciiPunct is Python's string.punctuation: the normaliser removes exactly
// these, so curly quotes and other Unicode punctuation stay, as in FireAct.
const asciiPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// NormalizeAnswer is HotpotQA's normalize_answer: lower case, remove ASCII
// punctuation, replace the words a/an/the by a space, and fold white space.
func NormalizeAnswer(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r < 0x80 && strings.ContainsRune(asciiPunct, r) {
			return -1
		}
		return r
	}, s)
	s = removeArticles(s)
	return strings.Join(strings.FieldsFunc(s, isPySpace), " ")
}

// removeArticles is re.sub(r"\b(a|an|the)\b", " ", s) with Python 3's Unicode
// word boundaries: a maximal run of word characters equal to an article is
// replaced by one space. (Go's regexp \b is ASCII-only, so "éthe" would lose
// its "the"; Python keeps it.)
func removeArticles(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if !isPyWord(rs[i]) {
			b.WriteRune(rs[i])
			i++
			continue
		}
		j := i
		for j < len(rs) && isPyWord(rs[j]) {
			j++
		}
		switch w := string(rs[i:j]); w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	return b.String()
}

// isPyWord is Python's \w for str patterns: letters, numbers and underscore.
func isPyWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_'
}

// isPySpace is what Python's str.split() splits on: Unicode white space plus
// the ASCII information separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// EM is 1 when the normalised prediction equals the normalised gold answer.
func EM(pred, gold string) float64 {
	if NormalizeAnswer(pred) == NormalizeAnswer(gold) {
		return 1
	}
	return 0
}

// F1 is HotpotQA's token-level F1 over normalised answers, with its rule that
// a yes/no/noanswer prediction or gold scores 0 unless both are equal. Like
// HotpotQA, two empty answers score 0.
func F1(pred, gold string) (f1, precision, recall float64) {
	p, g := NormalizeAnswer(pred), NormalizeAnswer(gold)
	special := func(s string) bool { return s == "yes" || s == "no" || s == "noanswer" }
	if (special(p) || special(g)) && p != g {
		return 0, 0, 0
	}
	pt, gt := strings.Fields(p), strings.Fields(g)
	counts := map[string]int{}
	for _, t := range gt {
		counts[t]++
	}
	same := 0
	for _, t := range pt {
		if counts[t] > 0 {
			counts[t]--
			same++
		}
	}
	if same == 0 {
		return 0, 0, 0
	}
	precision = float64(same) / float64(len(pt))
	recall = float64(same) / float64(len(gt))
	return 2 * precision * recall / (precision + recall), precision, recall
}

// QA scores a free-form answer (HotpotQA, Bamboogle) with EM and F1.
func QA(pred, gold string) Scores {
	f1, _, _ := F1(pred, gold)
	return Scores{EM: EM(pred, gold), F1: f1}
}
