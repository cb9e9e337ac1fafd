package agent

import (
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// The project's own few-shot exemplars. FireAct's prompt files (under the shared
// data) are only for exact reproduction through --prompt-file; these are written
// for fireact, in the same trajectory text the fine-tuning data uses.

// exemplar is one worked example: a question and its trajectory steps.
type exemplar struct {
	question string
	steps    []trajectory.Step
}

func react(thought, action, arg, obs string) trajectory.Step {
	return trajectory.Step{Thought: thought, Action: action, Argument: arg, Observation: obs}
}

var qaReAct = []exemplar{
	{"The composer of the opera \"The Magic Flute\" was born in which city?", []trajectory.Step{
		react("I need to find who composed The Magic Flute, then find where that person was born.", "search", "composer of the opera The Magic Flute",
			"The Magic Flute is an opera in two acts by Wolfgang Amadeus Mozart to a German libretto by Emanuel Schikaneder. It premiered in Vienna in 1791."),
		react("The composer is Wolfgang Amadeus Mozart. Now I need his birthplace.", "search", "Wolfgang Amadeus Mozart birthplace",
			"Wolfgang Amadeus Mozart was born on 27 January 1756 in Salzburg, then the capital of the Prince-Archbishopric of Salzburg."),
		react("Mozart was born in Salzburg, so the answer is Salzburg.", "finish", "Salzburg", ""),
	}},
	{"Which university was founded first, the University of Oxford or the University of Cambridge?", []trajectory.Step{
		react("I need the founding dates of both universities, then compare them.", "search", "University of Oxford founded",
			"There is evidence of teaching at Oxford as early as 1096, making it the oldest university in the English-speaking world."),
		react("Oxford dates from about 1096. Now I need the founding date of Cambridge.", "search", "University of Cambridge founded",
			"The University of Cambridge was founded in 1209 by scholars who left Oxford after a dispute with the townspeople."),
		react("Oxford (about 1096) is older than Cambridge (1209), so the University of Oxford was founded first.", "finish", "University of Oxford", ""),
	}},
	{"In what year was the tower built for the 1889 World's Fair in Paris completed?", []trajectory.Step{
		react("The tower built for the 1889 World's Fair in Paris is the Eiffel Tower. I need the year it was completed.", "search", "Eiffel Tower completed year",
			"Constructed from 1887 to 1889 as the centerpiece of the 1889 World's Fair, the Eiffel Tower was completed in March 1889."),
		react("The Eiffel Tower was completed in 1889.", "finish", "1889", ""),
	}},
}

var qaCoT = []exemplar{
	{qaReAct[0].question, []trajectory.Step{react("The Magic Flute is an opera by Wolfgang Amadeus Mozart. Mozart was born in Salzburg. So the answer is Salzburg.", "finish", "Salzburg", "")}},
	{qaReAct[1].question, []trajectory.Step{react("Teaching at Oxford existed by 1096, while Cambridge was founded in 1209 by scholars who left Oxford. 1096 < 1209, so the University of Oxford was founded first.", "finish", "University of Oxford", "")}},
	{qaReAct[2].question, []trajectory.Step{react("The tower built for the 1889 World's Fair is the Eiffel Tower, which was finished in March 1889. So the answer is 1889.", "finish", "1889", "")}},
}

var yesNoReAct = []exemplar{
	{"Was the Eiffel Tower already standing when the Titanic sank?", []trajectory.Step{
		react("I need the year the Eiffel Tower was completed and the year the Titanic sank, then compare.", "search", "Eiffel Tower completed year",
			"Constructed from 1887 to 1889 as the centerpiece of the 1889 World's Fair, the Eiffel Tower was completed in March 1889."),
		react("The Eiffel Tower was completed in 1889. Now I need the year the Titanic sank.", "search", "year the Titanic sank",
			"RMS Titanic sank in the early morning hours of 15 April 1912 in the North Atlantic Ocean."),
		react("The tower was completed in 1889, before the Titanic sank in 1912, so it was already standing.", "finish", "yes", ""),
	}},
	{"Could a single person read every book in the Library of Congress in one year?", []trajectory.Step{
		react("I need to know how many books the Library of Congress holds.", "search", "how many books in the Library of Congress",
			"The Library of Congress holds more than 25 million catalogued books in its collections."),
		react("Reading 25 million books in 365 days would take about 68,000 books a day, which no person can do.", "finish", "no", ""),
	}},
}

var yesNoCoT = []exemplar{
	{yesNoReAct[0].question, []trajectory.Step{react("The Eiffel Tower was completed in 1889 and the Titanic sank in 1912. 1889 is before 1912, so the tower was already standing.", "finish", "yes", "")}},
	{yesNoReAct[1].question, []trajectory.Step{react("The Library of Congress holds more than 25 million books. Reading them in a year would mean about 68,000 books a day, which is impossible.", "finish", "no", "")}},
}

var choiceReAct = []exemplar{
	{"Question: Which gas makes up most of the Earth's atmosphere?\nA. Oxygen\nB. Nitrogen\nC. Carbon dioxide\nD. Argon", []trajectory.Step{
		react("Nitrogen is about 78% of the air, far more than oxygen at about 21%. So the answer is B.", "finish", "B", ""),
	}},
	{"Question: The Treaty of Westphalia ended which war?\nA. The Hundred Years' War\nB. The War of the Roses\nC. The Thirty Years' War\nD. The Seven Years' War", []trajectory.Step{
		react("I need to find which war the Peace of Westphalia ended.", "search", "Treaty of Westphalia ended which war",
			"The Peace of Westphalia, signed in 1648 in Osnabrück and Münster, ended the Thirty Years' War in the Holy Roman Empire."),
		react("The treaty ended the Thirty Years' War, which is option C.", "finish", "C", ""),
	}},
}

var choiceCoT = []exemplar{
	{choiceReAct[0].question, choiceReAct[0].steps},
	{choiceReAct[1].question, []trajectory.Step{react("The Peace of Westphalia of 1648 ended the Thirty Years' War. So the answer is C.", "finish", "C", "")}},
}

// taskKind groups tasks that share exemplars and a reward wording.
func taskKind(task string) string {
	switch task {
	case "strategyqa":
		return "yesno"
	case "mmlu":
		return "choice"
	}
	return "qa"
}

// RewardText renders a reward in a task's final observation the way FireAct's
// environments do: True/False for HotpotQA-style question answering, 1/0 for
// the others.
func RewardText(task string, reward float64) string {
	ok := reward >= 1
	if taskKind(task) == "qa" {
		if ok {
			return "True"
		}
		return "False"
	}
	if ok {
		return "1"
	}
	return "0"
}

// FinishObservation is the observation of a finish action.
func FinishObservation(task string, reward float64, known bool) string {
	if !known {
		return "Episode finished"
	}
	return "Episode finished, reward = " + RewardText(task, reward)
}

const searchHelp = "(1) search[query], which searches the web and returns a short snippet of the best result. If the snippet does not hold the answer, try a different query.\n" +
	"(2) finish[answer], which gives the final answer and ends the task."

// FewShotPrompt returns the project's built-in few-shot prompt for a task and
// method: instructions and worked examples, ending with a blank line, ready for
// the question to be appended.
func FewShotPrompt(task string, m Method) string {
	kind := taskKind(task)
	var b strings.Builder
	answerRule := ""
	switch kind {
	case "yesno":
		answerRule = " The answer must be yes or no."
	case "choice":
		answerRule = " The answer must be the letter of one option."
	}
	var exs []exemplar
	switch {
	case m.AnswerOnly:
		b.WriteString("Answer the question directly." + answerRule + "\nHere are some examples.\n\n")
		exs = pick(kind, qaCoT, yesNoCoT, choiceCoT)
	case !m.Tools:
		b.WriteString("Answer the question by reasoning step by step in a Thought, then giving the answer with finish[answer]." + answerRule + "\nHere are some examples.\n\n")
		exs = pick(kind, qaCoT, yesNoCoT, choiceCoT)
	default:
		b.WriteString("Solve a question answering task with interleaving Thought, Action, Observation steps. A Thought reasons about what is known and what is still missing, and an Action is one of:\n" +
			searchHelp + answerRule + "\nHere are some examples.\n\n")
		exs = pick(kind, qaReAct, yesNoReAct, choiceReAct)
	}
	writeExemplars(&b, task, m, exs)
	return b.String()
}

// writeExemplars renders worked examples as the trajectory text the agent
// writes, each ending with its finish observation and a blank line.
func writeExemplars(b *strings.Builder, task string, m Method, exs []exemplar) {
	for _, ex := range exs {
		b.WriteString(ex.question)
		b.WriteByte('\n')
		if m.AnswerOnly {
			b.WriteString("Answer: " + ex.steps[len(ex.steps)-1].Argument)
		} else {
			steps := append([]trajectory.Step(nil), ex.steps...)
			last := &steps[len(steps)-1]
			last.Observation = FinishObservation(task, 1, true)
			b.WriteString(trajectory.Render(trajectory.Trajectory{Steps: steps}))
		}
		b.WriteString("\n\n")
	}
}

func pick(kind string, qa, yesno, choice []exemplar) []exemplar {
	switch kind {
	case "yesno":
		return yesno
	case "choice":
		return choice
	}
	return qa
}
