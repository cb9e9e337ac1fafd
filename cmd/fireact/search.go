package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/turn"
)

func searchCommand() *cli.Command {
	return &cli.Command{
		Name:  "search",
		Usage: "search a local corpus: query<TAB>rank<TAB>title<TAB>score lines (or the agent's observation) for many queries",
		Description: "Each QUERY argument is one query; --file reads one query per line (\"-\": standard input).\n" +
			"The tool cache is neither read nor written. Timings go to standard error.",
		ArgsUsage: "QUERY... | --file FILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "corpus", Value: "wiki", Usage: "corpus `NAME` (fireact index)"},
			&cli.IntFlag{Name: "k", Value: 5, Usage: "hits per query"},
			&cli.BoolFlag{Name: "observation", Usage: "print query<TAB>observation: what the agent's search[query] would see"},
			&cli.StringFlag{Name: "search-style", Value: agent.SearchStyleFireAct, Usage: "observation style with --observation: fireact or react"},
			&cli.StringFlag{Name: "file", Usage: "read queries from `FILE`, one per line"},
			storeDBFlag(),
		},
		Action: func(c *cli.Context) error {
			args, err := trailingFlags(c)
			if err != nil {
				return err
			}
			queries, err := searchQueries(args, c.String("file"), c.App.Reader)
			if err != nil {
				return err
			}
			if c.Int("k") <= 0 {
				return fmt.Errorf("-k %d: want at least 1 hit per query", c.Int("k"))
			}
			style, err := agent.ParseSearchStyle(c.String("search-style"))
			if err != nil {
				return err
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			corpus := c.String("corpus")
			v, err := s.CorpusVersion(c.Context, corpus)
			if err != nil {
				return err
			}
			if v.Docs == 0 {
				return fmt.Errorf("corpus %q in %s is missing or empty; index it first: fireact index FILE --corpus %s", corpus, s.Path(), corpus)
			}
			tool := &agent.LocalSearch{Store: s, Corpus: corpus, Style: style}
			w := bufio.NewWriter(c.App.Writer)
			defer w.Flush()
			took := make([]time.Duration, 0, len(queries))
			for _, q := range queries {
				start := time.Now()
				if c.Bool("observation") {
					o, err := tool.Call(c.Context, turn.ActionSearch, q)
					if err != nil {
						return err
					}
					took = append(took, time.Since(start))
					// Folded to one line, as the agent records an observation.
					text := turn.Fold(o.Text)
					if text == "" {
						text = "None"
					}
					fmt.Fprintf(w, "%s\t%s\n", tsvField(q), text)
					continue
				}
				docs, err := s.SearchCorpus(c.Context, corpus, q, c.Int("k"))
				if err != nil {
					return err
				}
				took = append(took, time.Since(start))
				for i, d := range docs {
					fmt.Fprintf(w, "%s\t%d\t%s\t%.4f\n", tsvField(q), i+1, tsvField(d.Title), d.Score)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(c.App.ErrWriter, latencySummary(took))
			return nil
		},
	}
}

// searchQueries are the positional queries or the lines of file ("-": stdin),
// one of the two; blank lines are skipped.
func searchQueries(args []string, file string, stdin io.Reader) ([]string, error) {
	if file == "" {
		if len(args) == 0 {
			return nil, fmt.Errorf("want queries as arguments or --file FILE")
		}
		return args, nil
	}
	if len(args) > 0 {
		return nil, fmt.Errorf("want queries as arguments or --file FILE, not both")
	}
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var qs []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if q := strings.TrimSpace(sc.Text()); q != "" {
			qs = append(qs, q)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read queries from %s: line %d: %w", file, len(qs)+1, err)
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s holds no queries", file)
	}
	return qs, nil
}

// tsvField keeps a value on its line and in its column.
func tsvField(s string) string {
	return strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(s)
}

// latencySummary is "N queries in T: p50 X, p99 Y" (nearest-rank percentiles).
func latencySummary(took []time.Duration) string {
	if len(took) == 0 {
		return "0 queries"
	}
	var total time.Duration
	for _, d := range took {
		total += d
	}
	sorted := append([]time.Duration(nil), took...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(sorted))+0.999999) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	return fmt.Sprintf("%d queries in %s: p50 %s, p99 %s", len(took), total.Round(time.Microsecond),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
}
