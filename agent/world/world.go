// Package world generates the demo world: a seeded miniature encyclopedia of
// people, films, organisations, cities and countries, written as short paragraphs
// (the offline search corpus), with HotpotQA-style questions over it — bridge
// questions ("What is the nationality of the director of X?"), comparisons ("Who
// was born first, A or B?") and yes/no comparisons ("Are A and B of the same
// nationality?") — and a scripted oracle teacher that answers them with ReAct, CoT
// and Reflexion trajectories through the real search tool.
//
// Train and dev questions use disjoint entities, so a student cannot memorise dev
// answers from its training trajectories: it has to search.
package world

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

// Config sizes the world. The same Config gives the same world, byte for byte.
type Config struct {
	Seed uint64
	// Entities per split (train and dev each get their own).
	People int
	Films  int
	Orgs   int
	// Questions per split.
	TrainQuestions int
	DevQuestions   int
}

// DefaultConfig is the world of `fireact demo`.
func DefaultConfig() Config {
	return Config{Seed: 1, People: 48, Films: 32, Orgs: 16, TrainQuestions: 240, DevQuestions: 40}
}

// Country is a country and its nationality adjective.
type Country struct{ Name, Adj string }

// Person is a person of the world.
type Person struct {
	Name       string
	Born       int
	Country    Country
	Profession string
	City       string // birthplace
}

// Film is a film of the world.
type Film struct {
	Title    string
	Year     int
	Genre    string
	Director *Person
}

// Org is an organisation of the world.
type Org struct {
	Name    string
	Kind    string
	Founded int
	Founder *Person
	City    string
}

// Question is a question with its answer and the oracle's plan.
type Question struct {
	Index  int
	Text   string
	Answer string
	Kind   string
	// Hops are the search queries that establish the answer, in order; Facts are
	// the sentence each hop's observation contributes.
	Hops  []string
	Facts []string
	// Wrong is a plausible wrong answer (Reflexion's first attempt).
	Wrong string
}

// World is a generated world.
type World struct {
	Config    Config
	Countries []Country
	Cities    map[string]Country // city -> country
	People    []*Person
	Films     []*Film
	Orgs      []*Org
	Train     []Question
	Dev       []Question
	docs      []store.CorpusDoc
}

// Question kinds.
const (
	KindNationality = "bridge-nationality" // nationality of the director of a film
	KindBirthplace  = "bridge-birthplace"  // birthplace of the founder of an organisation
	KindBornFirst   = "comparison-born-first"
	KindSameCountry = "comparison-same-nationality"
)

var (
	syllables   = []string{"ka", "lo", "mi", "ren", "tor", "va", "sel", "din", "mar", "ko", "bel", "tha", "ris", "nor", "quin", "ze", "pol", "ard", "vin", "sha", "del", "gor", "ul", "fen", "ta", "bri", "os", "cal"}
	countryBase = []Country{{"Norvia", "Norvian"}, {"Castel", "Castelian"}, {"Ostria", "Ostrian"}, {"Velland", "Vellish"},
		{"Marosa", "Marosan"}, {"Duvany", "Duvanian"}, {"Kelt", "Keltic"}, {"Serrat", "Serratan"}}
	professions = []string{"film director", "novelist", "painter", "architect", "composer", "physicist", "engineer", "poet"}
	genres      = []string{"drama", "comedy", "thriller", "western", "musical", "documentary"}
	orgKinds    = []string{"company", "university", "museum", "orchestra", "bank", "publisher"}
	filmWords   = []string{"Silent", "Harbor", "Winter", "Crown", "River", "Glass", "Garden", "Iron", "Last", "Summer", "Night", "Road", "Golden", "Empty", "Hidden", "Valley", "Storm", "Paper", "Long", "Red"}
	orgWords    = []string{"Works", "Institute", "Foundation", "House", "Group", "Society", "Trust", "Hall"}
)

// New generates the world described by cfg.
func New(cfg Config) *World {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x66697265616374))
	w := &World{Config: cfg, Countries: countryBase, Cities: map[string]Country{}}
	used := map[string]bool{}
	word := func(parts int) string {
		for {
			var b strings.Builder
			for i := 0; i < parts; i++ {
				b.WriteString(syllables[rng.IntN(len(syllables))])
			}
			s := b.String()
			s = strings.ToUpper(s[:1]) + s[1:]
			if !used[s] {
				used[s] = true
				return s
			}
		}
	}
	for _, c := range w.Countries {
		used[c.Name], used[c.Adj] = true, true
	}
	// Three cities per country.
	var cities []string
	for _, c := range w.Countries {
		for i := 0; i < 3; i++ {
			name := word(2)
			w.Cities[name] = c
			cities = append(cities, name)
		}
	}
	// Both splits draw entities from the same generators but never share one.
	makeSplit := func() ([]*Person, []*Film, []*Org) {
		var people []*Person
		for i := 0; i < cfg.People; i++ {
			city := cities[rng.IntN(len(cities))]
			p := &Person{Name: word(2) + " " + word(2), Born: 1900 + rng.IntN(90), City: city,
				Country: w.Cities[city], Profession: professions[rng.IntN(len(professions))]}
			people = append(people, p)
		}
		var directors []*Person
		for _, p := range people {
			if p.Profession == "film director" {
				directors = append(directors, p)
			}
		}
		for len(directors) < 4 && len(people) > 0 { // every world needs some directors
			p := people[len(directors)]
			p.Profession = "film director"
			directors = append(directors, p)
		}
		var films []*Film
		for i := 0; i < cfg.Films; i++ {
			var title string
			for {
				title = "The " + filmWords[rng.IntN(len(filmWords))] + " " + filmWords[rng.IntN(len(filmWords))]
				if !used[title] && !strings.Contains(title[4:], strings.Fields(title)[1]+" "+strings.Fields(title)[1]) {
					break
				}
			}
			used[title] = true
			d := directors[rng.IntN(len(directors))]
			films = append(films, &Film{Title: title, Year: d.Born + 25 + rng.IntN(40), Genre: genres[rng.IntN(len(genres))], Director: d})
		}
		var orgs []*Org
		for i := 0; i < cfg.Orgs; i++ {
			name := word(2) + " " + orgWords[rng.IntN(len(orgWords))]
			f := people[rng.IntN(len(people))]
			orgs = append(orgs, &Org{Name: name, Kind: orgKinds[rng.IntN(len(orgKinds))], Founded: f.Born + 20 + rng.IntN(40),
				Founder: f, City: cities[rng.IntN(len(cities))]})
		}
		return people, films, orgs
	}
	trainP, trainF, trainO := makeSplit()
	devP, devF, devO := makeSplit()
	w.People = append(trainP, devP...)
	w.Films = append(trainF, devF...)
	w.Orgs = append(trainO, devO...)
	w.Train = makeQuestions(rng, trainP, trainF, trainO, cfg.TrainQuestions)
	w.Dev = makeQuestions(rng, devP, devF, devO, cfg.DevQuestions)
	w.docs = w.makeDocs(cities)
	return w
}

func personFact(p *Person) string {
	return fmt.Sprintf("%s (born %d) is %s %s %s.", p.Name, p.Born, article(p.Country.Adj), p.Country.Adj, p.Profession)
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("AEIOUaeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func makeQuestions(rng *rand.Rand, people []*Person, films []*Film, orgs []*Org, n int) []Question {
	var qs []Question
	seen := map[string]bool{}
	for tries := 0; len(qs) < n && tries < 100*n; tries++ {
		var q Question
		switch k := rng.IntN(4); {
		case k == 0 && len(films) > 0:
			f := films[rng.IntN(len(films))]
			d := f.Director
			q = Question{Kind: KindNationality, Text: fmt.Sprintf("What is the nationality of the director of %s?", f.Title),
				Answer: d.Country.Adj, Hops: []string{f.Title, d.Name},
				Facts: []string{fmt.Sprintf("%s was directed by %s.", f.Title, d.Name), personFact(d)}}
			q.Wrong = otherCountry(rng, d.Country).Adj
		case k == 1 && len(orgs) > 0:
			o := orgs[rng.IntN(len(orgs))]
			f := o.Founder
			q = Question{Kind: KindBirthplace, Text: fmt.Sprintf("In which city was the founder of %s born?", o.Name),
				Answer: f.City, Hops: []string{o.Name, f.Name},
				Facts: []string{fmt.Sprintf("%s was founded by %s.", o.Name, f.Name), fmt.Sprintf("%s was born in %s.", f.Name, f.City)}}
			q.Wrong = o.City
			if q.Wrong == q.Answer {
				q.Wrong = "Norvia"
			}
		case k == 2:
			a, b := people[rng.IntN(len(people))], people[rng.IntN(len(people))]
			if a == b || a.Born == b.Born {
				continue
			}
			first, other := a, b
			if b.Born < a.Born {
				first, other = b, a
			}
			q = Question{Kind: KindBornFirst, Text: fmt.Sprintf("Who was born first, %s or %s?", a.Name, b.Name),
				Answer: first.Name, Wrong: other.Name, Hops: []string{a.Name, b.Name},
				Facts: []string{fmt.Sprintf("%s was born in %d.", a.Name, a.Born), fmt.Sprintf("%s was born in %d.", b.Name, b.Born)}}
		case k == 3:
			a, b := people[rng.IntN(len(people))], people[rng.IntN(len(people))]
			if a == b {
				continue
			}
			ans, wrong := "no", "yes"
			if a.Country == b.Country {
				ans, wrong = "yes", "no"
			}
			q = Question{Kind: KindSameCountry, Text: fmt.Sprintf("Are %s and %s of the same nationality?", a.Name, b.Name),
				Answer: ans, Wrong: wrong, Hops: []string{a.Name, b.Name},
				Facts: []string{fmt.Sprintf("%s is %s.", a.Name, a.Country.Adj), fmt.Sprintf("%s is %s.", b.Name, b.Country.Adj)}}
		default:
			continue
		}
		if seen[q.Text] {
			continue
		}
		seen[q.Text] = true
		q.Index = len(qs)
		qs = append(qs, q)
	}
	return qs
}

func otherCountry(rng *rand.Rand, c Country) Country {
	for {
		o := countryBase[rng.IntN(len(countryBase))]
		if o != c {
			return o
		}
	}
}

// makeDocs writes one paragraph per entity, in a fixed order.
func (w *World) makeDocs(cities []string) []store.CorpusDoc {
	var docs []store.CorpusDoc
	for _, p := range w.People {
		text := personFact(p) + fmt.Sprintf(" %s was born in %s, a city in %s.", p.Name, p.City, p.Country.Name)
		var works []string
		for _, f := range w.Films {
			if f.Director == p {
				works = append(works, f.Title)
			}
		}
		if len(works) > 0 {
			text += fmt.Sprintf(" %s directed %s.", p.Name, strings.Join(works, " and "))
		}
		docs = append(docs, store.CorpusDoc{Title: p.Name, Text: text})
	}
	for _, f := range w.Films {
		docs = append(docs, store.CorpusDoc{Title: f.Title, Text: fmt.Sprintf("%s is a %d %s film. %s was directed by %s.",
			f.Title, f.Year, f.Genre, f.Title, f.Director.Name)})
	}
	for _, o := range w.Orgs {
		docs = append(docs, store.CorpusDoc{Title: o.Name, Text: fmt.Sprintf("%s is %s %s based in %s. %s was founded by %s in %d.",
			o.Name, article(o.Kind), o.Kind, o.City, o.Name, o.Founder.Name, o.Founded)})
	}
	for _, c := range cities {
		docs = append(docs, store.CorpusDoc{Title: c, Text: fmt.Sprintf("%s is a city in %s.", c, w.Cities[c].Name)})
	}
	for _, c := range w.Countries {
		docs = append(docs, store.CorpusDoc{Title: c.Name, Text: fmt.Sprintf("%s is a country. Its people are called %s.", c.Name, c.Adj)})
	}
	return docs
}

// Docs returns the encyclopedia as corpus documents (title, paragraph).
func (w *World) Docs() []store.CorpusDoc { return append([]store.CorpusDoc(nil), w.docs...) }

// Questions returns the questions of a split ("train" or "dev").
func (w *World) Questions(split string) ([]Question, error) {
	switch split {
	case "train":
		return w.Train, nil
	case "dev":
		return w.Dev, nil
	}
	return nil, fmt.Errorf("world: unknown split %q (train or dev)", split)
}

// TaskName is the task name of the demo world's questions.
const TaskName = "world"

// Task returns a split as a tasks.Task scored with HotpotQA's EM/F1.
func (w *World) Task(split string) (tasks.Task, error) {
	qs, err := w.Questions(split)
	if err != nil {
		return nil, err
	}
	var tq []tasks.Question
	for _, q := range qs {
		tq = append(tq, tasks.Question{Index: q.Index, ID: fmt.Sprintf("world-%d-%s-%d", w.Config.Seed, split, q.Index),
			Text: q.Text, Gold: q.Answer, Metadata: map[string]any{"kind": q.Kind}})
	}
	return &tasks.Static{TaskName: TaskName, SplitName: split, Questions: tq, Scorer: tasks.ScorerFor(tasks.HotpotQA)}, nil
}

// Vocabulary returns every word the world's texts use, so a student's tokenizer
// can hold each name as whole pieces (sorted, unique).
func (w *World) Vocabulary() []string {
	set := map[string]bool{}
	add := func(s string) {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool {
			return r == ' ' || r == '.' || r == ',' || r == '?' || r == '(' || r == ')' || r == '[' || r == ']'
		}) {
			set[f] = true
		}
	}
	for _, d := range w.docs {
		add(d.Title)
		add(d.Text)
	}
	for _, qs := range [][]Question{w.Train, w.Dev} {
		for _, q := range qs {
			add(q.Text)
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// CorpusText is the encyclopedia as one text (a paragraph per line), for
// pretraining a student on the world's language.
func (w *World) CorpusText() string {
	var b strings.Builder
	for _, d := range w.docs {
		b.WriteString(d.Text)
		b.WriteString("\n")
	}
	return b.String()
}
