package agent

// GBNF grammars that make every turn of a local model parse. They bound the
// lengths of the thought and the argument so that a turn always completes
// within the turn's token budget (even from an untrained model) instead of
// being cut off mid-action. The grammar starts after the prompt's opening
// ("Thought:", "Action:" or "Answer:").

const grammarText = `
text ::= [^\n\[\]]
ttext ::= [^\n\[\]:]
`

// grammarActions is the alternation of action names: finish only without
// tools; search and finish with them; lookup too when the search tool has
// ReAct's lookup (otherwise a constrained model could not be given an action
// that its tool refuses).
func grammarActions(tools, lookup bool) string {
	switch {
	case !tools:
		return `"finish"`
	case lookup:
		return `("search" | "lookup" | "finish")`
	}
	return `("search" | "finish")`
}

// turnGrammar is a thought and an action line, for methods with tools (search
// or finish, and lookup with ReAct's Wikipedia search) or without (finish
// only). The thought has no ":" so that it cannot hold a label the parser
// would read as the action.
func turnGrammar(tools, lookup bool) string {
	return `root ::= " " thought "\nAction: " ` + grammarActions(tools, lookup) + ` "[" arg "]"
thought ::= [^\n\[\]: ] ttext{0,150}
arg ::= [^\n\[\] ] text{0,60}` + grammarText
}

// actionGrammar is the action line of a re-ask.
func actionGrammar(tools, lookup bool) string {
	return `root ::= " " ` + grammarActions(tools, lookup) + ` "[" arg "]"
arg ::= [^\n\[\] ] text{0,60}` + grammarText
}

// answerGrammar is an IO answer.
func answerGrammar() string {
	return `root ::= " " [^\n ] text{0,60}` + grammarText
}

// grammarMaxTokens is a turn budget under which the grammars always complete:
// every token holds at least one character ("lookup[" is as long as
// "search[" and "finish[").
const grammarMaxTokens = 1 + 150 + 1 + 9 + 7 + 61 + 1 + 8
