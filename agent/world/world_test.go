package world

import (
	"reflect"
	"strings"
	"testing"
)

func TestWorldDeterministicAndDisjoint(t *testing.T) {
	a, b := New(DefaultConfig()), New(DefaultConfig())
	if a.CorpusText() != b.CorpusText() || !reflect.DeepEqual(a.Train, b.Train) || !reflect.DeepEqual(a.Dev, b.Dev) {
		t.Fatal("same config gave different worlds")
	}
	for i := range a.Train {
		if a.Train[i].Text != b.Train[i].Text || a.Train[i].Answer != b.Train[i].Answer {
			t.Fatalf("question %d differs", i)
		}
	}
	cfg := DefaultConfig()
	cfg.Seed = 2
	if New(cfg).CorpusText() == a.CorpusText() {
		t.Fatal("another seed gave the same world")
	}
	if len(a.Train) != cfg.TrainQuestions || len(a.Dev) != cfg.DevQuestions {
		t.Fatalf("got %d train / %d dev questions", len(a.Train), len(a.Dev))
	}
	// Dev questions mention no entity of a train question.
	trainNames := map[string]bool{}
	for _, q := range a.Train {
		for _, h := range q.Hops {
			trainNames[h] = true
		}
	}
	for _, q := range a.Dev {
		for _, h := range q.Hops {
			if trainNames[h] {
				t.Fatalf("dev question %q shares entity %q with train", q.Text, h)
			}
		}
	}
	// Every hop has a document that states the fact the oracle relies on.
	docs := map[string]string{}
	for _, d := range a.Docs() {
		docs[d.Title] = d.Text
	}
	for _, q := range append(append([]Question(nil), a.Train...), a.Dev...) {
		if len(q.Hops) != len(q.Facts) || q.Answer == "" || q.Wrong == "" || q.Wrong == q.Answer {
			t.Fatalf("bad question %+v", q)
		}
		for _, h := range q.Hops {
			if _, ok := docs[h]; !ok {
				t.Fatalf("no document for hop %q of %q", h, q.Text)
			}
		}
		if q.Kind != KindSameCountry && q.Kind != KindBornFirst && !strings.Contains(docs[q.Hops[1]], q.Answer) {
			t.Fatalf("answer %q of %q is not in the document of %q", q.Answer, q.Text, q.Hops[1])
		}
	}
}
