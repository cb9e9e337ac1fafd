package agent

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/fireact/fireact/store"
)

// Corpus file formats that Index reads.
const (
	// CorpusFormatAuto detects the format of each file: a directory is read
	// as a tree of corpus files, a file starting with "[" is a JSON array of
	// rows, and a JSON-lines file is BEIR when its first object has "_id",
	// HotpotQA when its "text" is a list, rows otherwise.
	CorpusFormatAuto = "auto"
	// CorpusFormatRows is fireact's own: {"title", "text"} objects, one per
	// line or in one JSON array.
	CorpusFormatRows = "rows"
	// CorpusFormatHotpotQA is a file of HotpotQA's official abstracts dump
	// (enwiki-20171001-pages-meta-current-withlinks-abstracts/AA/wiki_00.bz2,
	// ...): JSON lines {"id", "url", "title", "text": [sentences], ...}, whose
	// sentences after the first start with their space, so they are joined
	// as they are.
	CorpusFormatHotpotQA = "hotpotqa"
	// CorpusFormatBEIR is BEIR's corpus.jsonl: {"_id", "title", "text",
	// "metadata"}.
	CorpusFormatBEIR = "beir"
)

// CorpusFormats lists the formats Index accepts.
func CorpusFormats() []string {
	return []string{CorpusFormatAuto, CorpusFormatRows, CorpusFormatHotpotQA, CorpusFormatBEIR}
}

// IndexOptions configure Index.
type IndexOptions struct {
	// Corpus is the corpus name the documents are added to.
	Corpus string
	// Format is one of CorpusFormats ("": auto).
	Format string
	// Warn receives one line per malformed input line ("FILE:LINE: reason"),
	// the first MaxWarnings of them; nil discards them (they are still
	// counted in IndexStats.Malformed).
	Warn io.Writer
	// MaxWarnings bounds the lines written to Warn (0: 100), so that a
	// foreign multi-gigabyte file does not flood the terminal.
	MaxWarnings int
	// Progress, when set, is called after every batch of documents added.
	Progress func(IndexStats)
	// Workers is the number of files read at once (0: GOMAXPROCS).
	Workers int
}

// IndexStats count what Index read.
type IndexStats struct {
	// Files is the number of files read; Formats counts them by format.
	Files   int
	Formats map[string]int
	// Docs is the number of documents read for adding (all of them added
	// once Index returns without error).
	Docs int
	// Malformed is the number of lines (or array elements) skipped because
	// they were not a document of the file's format; each was reported.
	Malformed int
	// Empty is the number of documents skipped for having no text (the
	// abstracts dump has pages whose abstract is empty).
	Empty int
	// Resumed counts the files an earlier, interrupted Index of the same
	// corpus had partly read (their records before that point are not read
	// again), and Indexed those it had read to the end (skipped whole).
	Resumed, Indexed int
}

// indexBatch is the number of documents added per transaction: large enough
// to be fast, small enough that a huge file does not sit in memory twice.
const indexBatch = 5000

// Index adds the documents of corpus files and directories to a corpus of the
// store's full-text index. Malformed lines are reported to o.Warn with their
// file and line and skipped. It fails (after indexing everything else) when a
// path given adds no document at all, or a file of a directory has only
// malformed lines; a file that cannot be read or decompressed fails at once.
// Batches committed before a failure stay committed.
//
// Files are decompressed and parsed by o.Workers goroutines while the store
// adds what they read (bzip2 and JSON took about 60% of a sequential index
// of a dump in HotpotQA's layout), but documents, warnings and the corpus
// fingerprint follow the order of the files (a directory's in name order),
// exactly as a sequential read would.
func Index(ctx context.Context, s *store.Store, paths []string, o IndexOptions) (IndexStats, error) {
	format := o.Format
	if format == "" {
		format = CorpusFormatAuto
	}
	if !validFormat(format) {
		return IndexStats{}, fmt.Errorf("index: unknown format %q (want %s)", o.Format, strings.Join(CorpusFormats(), ", "))
	}
	if o.Corpus == "" {
		return IndexStats{}, fmt.Errorf("index: no corpus name")
	}
	if o.MaxWarnings <= 0 {
		o.MaxWarnings = 100
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	// Every path is checked before anything is added.
	var jobs []*indexJob
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return IndexStats{}, fmt.Errorf("index: %w", err)
		}
		if !fi.IsDir() {
			jobs = append(jobs, &indexJob{path: p, arg: i})
			continue
		}
		files, err := corpusFiles(p)
		if err != nil {
			return IndexStats{}, err
		}
		for _, f := range files {
			jobs = append(jobs, &indexJob{path: f, arg: i, inDir: true})
		}
	}
	for _, j := range jobs {
		j.out = make(chan indexChunk, 2)
		if err := j.resumeFrom(ctx, s, o.Corpus); err != nil {
			return IndexStats{}, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// On return: stop the readers (each notices at its next chunk) and wait.
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Jobs start in order, so the one the store waits for always has a
		// reader; at most Workers read at once.
		sem := make(chan struct{}, o.Workers)
		for _, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				close(j.out)
				continue
			}
			wg.Add(1)
			go func(j *indexJob) {
				defer wg.Done()
				defer func() { <-sem }()
				readCorpusFile(ctx, j, format, o.Corpus)
			}(j)
		}
	}()
	ix := &indexer{ctx: ctx, s: s, o: o, stats: IndexStats{Formats: map[string]int{}}}
	return ix.consume(jobs, paths)
}

// indexJob is one file to read; its reader sends chunks on out, in order,
// and closes it.
type indexJob struct {
	path  string
	arg   int  // index of the path given that holds it
	inDir bool // found in a directory given
	out   chan indexChunk
	// src is the file's indexing progress: what an earlier Index of this
	// corpus read of it (its reader skips src.Records records, or the whole
	// file when src.Done), advanced in the transactions that add its
	// documents.
	src     store.CorpusSource
	resumed bool
}

// resumeFrom looks up how far an earlier Index read the job's file into
// corpus. A file changed since (another size, modification time or first
// MiB) is refused: its documents already in the corpus would be mixed with
// the new version's.
func (j *indexJob) resumeFrom(ctx context.Context, s *store.Store, corpus string) error {
	abs, err := filepath.Abs(j.path)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	id, err := fileIdentity(j.path)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	prev, ok, err := s.CorpusSourceProgress(ctx, corpus, abs)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if ok && prev.Identity != id {
		return fmt.Errorf("index: %s changed since it was indexed into corpus %q (%d records read, done: %v); index the new version into another corpus",
			j.path, corpus, prev.Records, prev.Done)
	}
	if !ok {
		prev = store.CorpusSource{Corpus: corpus, Source: abs, Identity: id}
	}
	j.src, j.resumed = prev, ok && !prev.Done && prev.Records > 0
	return nil
}

// fileIdentity names a file's content cheaply: its size, modification time
// and the SHA-256 of its first MiB.
func fileIdentity(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, 1<<20); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return fmt.Sprintf("%d:%d:%x", fi.Size(), fi.ModTime().UnixNano(), h.Sum(nil)[:16]), nil
}

// indexChunk is up to indexBatch documents of a file with what was skipped
// among them.
type indexChunk struct {
	docs      []store.CorpusDoc
	warns     []lineWarn
	malformed int
	empty     int
	records   int    // records of the file this chunk covers (documents, malformed and empty)
	format    string // the file's format once known ("" before)
	err       error  // the file cannot be read on: its last chunk
}

// lineWarn is a malformed line of a file.
type lineWarn struct {
	line int
	msg  string
}

// consume adds the jobs' documents in job order and accounts for them.
func (ix *indexer) consume(jobs []*indexJob, paths []string) (IndexStats, error) {
	argDocs := make([]int, len(paths))
	argMalformed := make([]int, len(paths))
	argEmpty := make([]int, len(paths))
	var failed []string
	for _, j := range jobs {
		docs, malformed, format := 0, 0, ""
		argDocs[j.arg] += j.src.Docs // added by an earlier Index of this file
		switch {
		case j.src.Done:
			ix.stats.Indexed++
		case j.resumed:
			ix.stats.Resumed++
		}
		ix.src = &j.src
		for ch := range j.out {
			for _, w := range ch.warns {
				ix.warn(j.path, w)
			}
			ix.stats.Malformed += ch.malformed
			ix.stats.Empty += ch.empty
			malformed += ch.malformed
			argEmpty[j.arg] += ch.empty
			if ch.format != "" {
				format = ch.format
			}
			ix.stats.Docs += len(ch.docs)
			ix.batch = append(ix.batch, ch.docs...)
			j.src.Records += ch.records
			j.src.Docs += len(ch.docs)
			j.src.Skipped += ch.malformed + ch.empty
			docs += len(ch.docs)
			if ch.err != nil {
				// What was read before the error is kept, with the progress
				// that lets a rerun go on after it.
				return ix.stats, errors.Join(ch.err, ix.flush())
			}
			// Whole chunks only, so the progress recorded with a batch
			// counts exactly the records whose documents it holds.
			if len(ix.batch) >= indexBatch {
				if err := ix.flush(); err != nil {
					return ix.stats, err
				}
			}
		}
		if err := ix.ctx.Err(); err != nil {
			return ix.stats, fmt.Errorf("index: %w", err)
		}
		if !j.src.Done {
			// The file's last documents with its end, in one transaction; a
			// batch never spans two files.
			j.src.Done = true
			if err := ix.flush(); err != nil {
				return ix.stats, err
			}
		}
		ix.stats.Files++
		if format != "" {
			ix.stats.Formats[format]++
		}
		argDocs[j.arg] += docs
		argMalformed[j.arg] += malformed
		if j.inDir && docs == 0 && malformed > 0 {
			failed = append(failed, fmt.Sprintf("%s: nothing indexed (%d malformed lines)", j.path, malformed))
		}
	}
	for i, p := range paths {
		if argDocs[i] == 0 {
			failed = append(failed, fmt.Sprintf("%s: nothing indexed (%d malformed lines, %d empty documents)", p, argMalformed[i], argEmpty[i]))
		}
	}
	if len(failed) > 0 {
		const show = 5 // a dump of thousands of files must not make a page-long error
		msg := strings.Join(failed[:min(len(failed), show)], "; ")
		if len(failed) > show {
			msg += fmt.Sprintf("; and %d more", len(failed)-show)
		}
		return ix.stats, fmt.Errorf("index: %s", msg)
	}
	return ix.stats, nil
}

// IndexFile indexes one file or directory in the auto-detected format and
// returns the number of documents added. Having nowhere to report them, it
// fails on malformed lines (after adding the good ones); Index lists them.
func IndexFile(ctx context.Context, s *store.Store, corpus, path string) (int, error) {
	var warn strings.Builder
	st, err := Index(ctx, s, []string{path}, IndexOptions{Corpus: corpus, Warn: &warn, MaxWarnings: 3})
	if err == nil && st.Malformed > 0 {
		err = fmt.Errorf("index %s: %d malformed lines skipped: %s", path, st.Malformed, strings.TrimSpace(warn.String()))
	}
	return st.Docs, err
}

func validFormat(f string) bool {
	for _, g := range CorpusFormats() {
		if f == g {
			return true
		}
	}
	return false
}

// corpusFiles lists the corpus files under dir in lexical order (AA/wiki_00.bz2,
// AA/wiki_01.bz2, AB/wiki_00.bz2, ...): names ending in .bz2, .gz, .jsonl or
// .json, hidden files and directories skipped.
func corpusFiles(dir string) ([]string, error) {
	// WalkDir does not enter a root that is a symbolic link (datasets often
	// are): walk its target, and name the files under the path as given.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	var out []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			switch n := strings.ToLower(d.Name()); {
			case strings.HasSuffix(n, ".bz2"), strings.HasSuffix(n, ".gz"), strings.HasSuffix(n, ".jsonl"), strings.HasSuffix(n, ".json"):
				rel, err := filepath.Rel(root, path)
				if err != nil {
					return err
				}
				out = append(out, filepath.Join(dir, rel))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("index: no corpus files (.bz2, .gz, .jsonl, .json) under %s", dir)
	}
	sort.Strings(out) // WalkDir is lexical already; keep the order explicit
	return out, nil
}

// indexer adds documents for one Index call.
type indexer struct {
	ctx    context.Context
	s      *store.Store
	o      IndexOptions
	stats  IndexStats
	batch  []store.CorpusDoc
	src    *store.CorpusSource // progress of the file the batch is from
	warned int
}

// warn reports a malformed line, the first MaxWarnings of them.
func (ix *indexer) warn(path string, w lineWarn) {
	if ix.o.Warn == nil {
		return
	}
	ix.warned++
	switch {
	case ix.warned <= ix.o.MaxWarnings:
		fmt.Fprintf(ix.o.Warn, "%s:%d: %s (skipped)\n", path, w.line, w.msg)
	case ix.warned == ix.o.MaxWarnings+1:
		fmt.Fprintf(ix.o.Warn, "more malformed lines: counted, not shown\n")
	}
}

// flush adds the batch with its file's progress in one transaction.
func (ix *indexer) flush() error {
	if err := ix.ctx.Err(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if err := ix.s.AddCorpusDocsFrom(ix.ctx, ix.batch, ix.src); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ix.batch = ix.batch[:0]
	if ix.o.Progress != nil {
		ix.o.Progress(ix.stats)
	}
	return nil
}

// fileReader reads one job's file into chunks.
type fileReader struct {
	ctx    context.Context
	j      *indexJob
	corpus string
	format string // CorpusFormatAuto until the first object decides
	cur    indexChunk
	seen   int // records met so far, those skipped on a resume included
}

// next counts a record and reports whether to read it: the first
// j.src.Records were read by an earlier Index.
func (fr *fileReader) next() bool {
	fr.seen++
	if fr.seen <= fr.j.src.Records {
		return false
	}
	fr.cur.records++
	return true
}

// readCorpusFile reads a job's file and sends its chunks, the last one with
// the error that ended it, if any; it closes j.out when done, or early when
// ctx ends. A file an earlier Index read to its end is not read again.
func readCorpusFile(ctx context.Context, j *indexJob, format, corpus string) {
	defer close(j.out)
	if j.src.Done {
		return
	}
	fr := &fileReader{ctx: ctx, j: j, corpus: corpus, format: format}
	fr.cur.err = fr.read()
	fr.send()
}

// send hands the current chunk to the store's side; false when ctx ended.
func (fr *fileReader) send() bool {
	if fr.format != CorpusFormatAuto {
		fr.cur.format = fr.format
	}
	select {
	case fr.j.out <- fr.cur:
		fr.cur = indexChunk{}
		return true
	case <-fr.ctx.Done():
		return false
	}
}

func (fr *fileReader) warnf(line int, format string, args ...any) {
	fr.cur.malformed++
	fr.cur.warns = append(fr.cur.warns, lineWarn{line, fmt.Sprintf(format, args...)})
}

func (fr *fileReader) add(d store.CorpusDoc) error {
	fr.cur.docs = append(fr.cur.docs, d)
	if len(fr.cur.docs) >= indexBatch && !fr.send() {
		return fmt.Errorf("index: %w", fr.ctx.Err())
	}
	return nil
}

// read reads the file, decompressed by its suffix.
func (fr *fileReader) read() error {
	path := fr.j.path
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch low := strings.ToLower(path); {
	case strings.HasSuffix(low, ".bz2"):
		r = bzip2.NewReader(f)
	case strings.HasSuffix(low, ".gz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("index %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	br := bufio.NewReaderSize(r, 1<<20)
	first, err := firstNonSpace(br)
	if errors.Is(err, io.EOF) {
		return nil // an empty file: nothing to add (Index reports it)
	}
	if err != nil {
		return fmt.Errorf("index %s: %w", path, err)
	}
	if first == '[' {
		if fr.format != CorpusFormatAuto && fr.format != CorpusFormatRows {
			return fmt.Errorf("index %s: a JSON array, but format %s is JSON lines", path, fr.format)
		}
		fr.format = CorpusFormatRows
		return fr.array(br)
	}
	return fr.lines(br)
}

// array reads a JSON array of rows. A syntax error ends it (the decoder
// cannot find the next element); an element of the wrong shape is skipped.
func (fr *fileReader) array(br *bufio.Reader) error {
	path := fr.j.path
	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("index %s: %w", path, err)
	}
	for i := 1; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("index %s: element %d (byte %d): %w", path, i, dec.InputOffset(), err)
		}
		if !fr.next() {
			continue
		}
		if err := fr.doc(i, raw); err != nil {
			return err
		}
	}
	return nil
}

// lines reads a JSON-lines file; in auto format the first object decides.
func (fr *fileReader) lines(br *bufio.Reader) error {
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if b = bytes.TrimSpace(b); len(b) > 0 {
			read := fr.next()
			if fr.format == CorpusFormatAuto {
				f, derr := detectFormat(b)
				if derr != nil && read {
					fr.warnf(line, "%s", jsonErr(derr, b))
				}
				fr.format = f
			}
			if fr.format != CorpusFormatAuto && read {
				if err := fr.doc(line, b); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("index %s: line %d: %w", fr.j.path, line, err)
		}
	}
}

// detectFormat decides a JSON-lines file's format from one of its lines
// (CorpusFormatAuto and the reason when the line is no JSON object).
func detectFormat(line []byte) (string, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return CorpusFormatAuto, err
	}
	if _, ok := probe["_id"]; ok {
		return CorpusFormatBEIR, nil
	}
	if t := bytes.TrimSpace(probe["text"]); len(t) > 0 && t[0] == '[' {
		return CorpusFormatHotpotQA, nil
	}
	return CorpusFormatRows, nil
}

// rawDoc holds the fields of every format, undecoded, so a wrong type is
// reported by field name.
type rawDoc struct {
	ID    json.RawMessage `json:"_id"`
	Title json.RawMessage `json:"title"`
	Text  json.RawMessage `json:"text"`
}

// doc adds one document of the file's format, or reports why the input is
// not one.
func (fr *fileReader) doc(line int, b []byte) error {
	var r rawDoc
	if err := json.Unmarshal(b, &r); err != nil {
		fr.warnf(line, "%s", jsonErr(err, b))
		return nil
	}
	var title, text string
	if len(r.Title) > 0 && string(r.Title) != "null" {
		if json.Unmarshal(r.Title, &title) != nil {
			fr.warnf(line, `field "title" is not a string: %s`, clipBytes(r.Title))
			return nil
		}
	}
	switch fr.format {
	case CorpusFormatHotpotQA:
		if title == "" {
			fr.warnf(line, `no "title" (HotpotQA abstracts have one per page)`)
			return nil
		}
		var sents []string
		if err := json.Unmarshal(r.Text, &sents); err != nil {
			var paras [][]string
			if json.Unmarshal(r.Text, &paras) == nil {
				fr.warnf(line, `field "text" is a list of paragraphs: this is the full processed dump, index the abstracts dump instead`)
			} else {
				fr.warnf(line, `field "text" is not a list of sentences: %s`, clipBytes(r.Text))
			}
			return nil
		}
		text = strings.Join(sents, "")
	default:
		if fr.format == CorpusFormatBEIR && len(r.ID) == 0 {
			fr.warnf(line, `no "_id" (BEIR corpus.jsonl rows have one)`)
			return nil
		}
		if len(r.Text) == 0 {
			fr.warnf(line, `no "text" field`)
			return nil
		}
		if json.Unmarshal(r.Text, &text) != nil {
			fr.warnf(line, `field "text" is not a string: %s`, clipBytes(r.Text))
			return nil
		}
	}
	if strings.TrimSpace(text) == "" {
		fr.cur.empty++
		return nil
	}
	return fr.add(store.CorpusDoc{Corpus: fr.corpus, Title: title, Text: text})
}

// jsonErr names the byte of a JSON syntax error within the line.
func jsonErr(err error, b []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("not a JSON object: %s", clipBytes(b))
	}
	return "invalid JSON: " + err.Error()
}

// clipBytes shortens a value for a warning line.
func clipBytes(b []byte) string {
	const n = 60
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if len(s) > n {
		cut := n
		for cut > 0 && (s[cut]&0xC0) == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// firstNonSpace skips white space and a UTF-8 byte order mark and returns
// the next byte, unread.
func firstNonSpace(br *bufio.Reader) (byte, error) {
	if b, err := br.Peek(3); err == nil && string(b) == "\xEF\xBB\xBF" {
		br.Discard(3)
	}
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
