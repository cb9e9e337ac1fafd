package agent

import (
	"strings"

	"github.com/fireact/fireact/agent/wikienv"
	"github.com/fireact/fireact/store/trajectory"
)

// The project's own few-shot exemplars for ReAct's Wikipedia tool semantics
// (SearchStyleReAct). FireAct's released prompts have no lookup: they were
// written for its Google snippet search, so a run with the ReAct style gets
// these unless --prompt-file gives ReAct's own prompt text. The observations
// are computed by wikienv from page texts, so the examples show exactly what
// the tool answers (a paragraph's last sentence with two dots included).

const (
	wikiMagicFlute = "The Magic Flute is an opera in two acts by Wolfgang Amadeus Mozart to a German libretto by Emanuel Schikaneder. " +
		"It premiered in Vienna in September 1791. It was the last opera Mozart completed."
	wikiMozart = "Wolfgang Amadeus Mozart (1756 – 1791) was a prolific composer of the Classical period. " +
		"He was born in Salzburg and showed great ability from his earliest childhood. He composed more than 800 works."
	wikiSalzburg = "Salzburg is the fourth-largest city in Austria. It is the capital of the federal state of Salzburg. " +
		"Its old town is known for its Baroque architecture. It is one of the best-preserved city centres north of the Alps. " +
		"The city was the home of a prince-archbishopric for centuries. The old town lies on the left bank of the Salzach river.\n"
	wikiOxford = "The University of Oxford is a collegiate research university in Oxford, England. " +
		"There is evidence of teaching there as early as 1096, making it the oldest university in the English-speaking world. " +
		"It grew rapidly from 1167."
	wikiCambridge = "The University of Cambridge is a collegiate research university in Cambridge, England. " +
		"It was founded in 1209 by scholars who left Oxford after a dispute with the townspeople."
)

func wikiExemplars() []exemplar {
	page := wikienv.PageObservation
	return []exemplar{
		{"The composer of the opera The Magic Flute was born in a city on which river?", []trajectory.Step{
			react("I need to search The Magic Flute, find its composer, then find the river of the city where he was born.", "search", "The Magic Flute", page(wikiMagicFlute)),
			react("The Magic Flute is by Wolfgang Amadeus Mozart. I need to search Wolfgang Amadeus Mozart and find where he was born.", "search", "Wolfgang Amadeus Mozart", page(wikiMozart)),
			react("Mozart was born in Salzburg. I need to search Salzburg and find its river.", "search", "Salzburg", page(wikiSalzburg)),
			react("The first sentences do not name a river. I need to look up river on this page.", "lookup", "river",
				mustLookup(wikiSalzburg, "river")),
			react("Salzburg lies on the Salzach river, so the answer is the Salzach.", "finish", "Salzach", ""),
		}},
		{"Which was founded first, the University of Oxford or the University of Cambridge?", []trajectory.Step{
			react("I need to search both universities and find when each was founded.", "search", "Oxford University founded",
				wikienv.NotFound("Oxford University founded", []string{"University of Oxford", "History of the University of Oxford", "Oxford", "Colleges of the University of Oxford"})),
			react("There is no page by that name, but University of Oxford is similar. I need to search University of Oxford.", "search", "University of Oxford", page(wikiOxford)),
			react("Teaching at Oxford dates from 1096. I need to search University of Cambridge next.", "search", "University of Cambridge", page(wikiCambridge)),
			react("Cambridge was founded in 1209, after Oxford (1096). So the University of Oxford was founded first.", "finish", "University of Oxford", ""),
		}},
	}
}

// mustLookup is the first lookup observation of keyword on page.
func mustLookup(page, keyword string) string {
	l := wikienv.LookupList(page, keyword)
	if len(l) == 0 {
		panic("agent: wiki exemplar has no sentence with " + keyword) // fixed text: caught by the tests
	}
	return wikienv.LookupResult(1, len(l), l[0])
}

const wikiSearchHelp = "(1) search[entity], which searches the offline Wikipedia for the page titled entity and shows its first sentences; if there is no such page, it shows similar titles to search instead.\n" +
	"(2) lookup[keyword], which shows the next sentence containing keyword in the last page found.\n" +
	"(3) finish[answer], which gives the final answer and ends the task."

// WikiFewShotPrompt is the built-in few-shot prompt of a method under
// SearchStyleReAct: instructions naming search, lookup and finish and worked
// examples that use them. Methods without tools get FewShotPrompt's.
func WikiFewShotPrompt(task string, m Method) string {
	if !m.Tools {
		return FewShotPrompt(task, m)
	}
	answerRule := ""
	switch taskKind(task) {
	case "yesno":
		answerRule = " The answer must be yes or no."
	case "choice":
		answerRule = " The answer must be the letter of one option."
	}
	var b strings.Builder
	b.WriteString("Solve a question answering task with interleaving Thought, Action, Observation steps. A Thought reasons about what is known and what is still missing, and an Action is one of:\n" +
		wikiSearchHelp + answerRule + "\nHere are some examples.\n\n")
	writeExemplars(&b, task, m, wikiExemplars())
	return b.String()
}
