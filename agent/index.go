package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/fireact/fireact/store"
)

// corpusRow is one document of a corpus file.
type corpusRow struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// indexBatch is the number of documents added per transaction: large enough
// to be fast, small enough that a huge file does not sit in memory twice.
const indexBatch = 5000

// IndexFile adds the {title, text} documents of a JSONL file or a JSON array
// to a corpus of the store's full-text index and returns how many it added.
// Rows without text are rejected with their position.
func IndexFile(ctx context.Context, s *store.Store, corpus, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	first, err := firstNonSpace(br)
	if err != nil {
		return 0, fmt.Errorf("index %s: %w", path, err)
	}
	dec := json.NewDecoder(br)
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return 0, fmt.Errorf("index %s: %w", path, err)
		}
	}
	var batch []store.CorpusDoc
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.AddCorpusDocs(ctx, batch); err != nil {
			return fmt.Errorf("index %s: %w", path, err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for row := 1; ; row++ {
		if first == '[' && !dec.More() {
			break
		}
		var r corpusRow
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			return n, fmt.Errorf("index %s: row %d: %w", path, row, err)
		}
		if r.Text == "" {
			return n, fmt.Errorf("index %s: row %d: no text", path, row)
		}
		batch = append(batch, store.CorpusDoc{Corpus: corpus, Title: r.Title, Text: r.Text})
		if len(batch) == indexBatch {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		if !bytes.ContainsAny(b, " \t\r\n") {
			return b[0], nil
		}
		br.ReadByte()
	}
}

// FindRun returns the run named nameOrID, or with that id when it is a number.
func FindRun(ctx context.Context, s *store.Store, nameOrID string) (store.Run, bool, error) {
	r, err := s.RunByName(ctx, nameOrID)
	if err == nil {
		return r, true, nil
	}
	if id, perr := strconv.ParseInt(nameOrID, 10, 64); perr == nil {
		if r, err = s.Run(ctx, id); err == nil {
			return r, true, nil
		}
	}
	return store.Run{}, false, fmt.Errorf("agent: no run named or numbered %q: %w", nameOrID, err)
}
