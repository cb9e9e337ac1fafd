package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
)

func indexCommand() *cli.Command {
	return &cli.Command{
		Name:  "index",
		Usage: "add documents to a local search corpus: {title, text} rows, HotpotQA's abstracts dump (a directory of .bz2 files) or BEIR's corpus.jsonl",
		Description: "Each FILE is JSON lines or a JSON array, optionally .bz2 or .gz; a DIR is read as a tree of such files\n" +
			"in name order (enwiki-20171001-pages-meta-current-withlinks-abstracts/AA/wiki_00.bz2, ...). Malformed\n" +
			"lines are reported as FILE:LINE and skipped; a FILE or DIR that adds no document is an error.",
		ArgsUsage: "FILE|DIR...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "corpus", Value: "wiki", Usage: "corpus `NAME`"},
			&cli.StringFlag{Name: "format", Value: agent.CorpusFormatAuto, Usage: "input format: " + strings.Join(agent.CorpusFormats(), ", ") + " (auto: by each file's first row)"},
			storeDBFlag(),
		},
		Action: func(c *cli.Context) error {
			args, err := trailingFlags(c)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return fmt.Errorf("want a corpus file or directory")
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			o := agent.IndexOptions{Corpus: c.String("corpus"), Format: c.String("format"), Warn: c.App.ErrWriter}
			if isTerminal(c.App.ErrWriter) {
				o.Progress = func(st agent.IndexStats) {
					fmt.Fprintf(c.App.ErrWriter, "\rindexing: %d documents from %d files   ", st.Docs, st.Files)
				}
			}
			st, ierr := agent.Index(c.Context, s, args, o)
			if o.Progress != nil {
				fmt.Fprintln(c.App.ErrWriter)
			}
			v, err := s.CorpusVersion(c.Context, c.String("corpus"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "indexed %d documents into corpus %q (%d in all, cached searches under %s)\n", st.Docs, c.String("corpus"), v.Docs, agent.LocalCacheBackend(v))
			fmt.Fprintf(c.App.Writer, "read %d files (%s); skipped %d malformed lines and %d empty documents\n", st.Files, formatCounts(st.Formats), st.Malformed, st.Empty)
			if st.Resumed > 0 || st.Indexed > 0 {
				fmt.Fprintf(c.App.Writer, "resumed %d files an interrupted index had partly read; %d files were indexed already (not added again)\n", st.Resumed, st.Indexed)
			}
			return ierr
		},
	}
}

// formatCounts lists the files per format, "hotpotqa: 3, rows: 1".
func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "no format detected"
	}
	var parts []string
	for f, n := range m {
		parts = append(parts, fmt.Sprintf("%s: %d", f, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// isTerminal reports whether w is a terminal, where a progress line that
// rewrites itself reads well (in a log file it would not).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
