package dataformat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// ReadFile reads a fine-tuning file. Malformed rows are returned as
// RowErrors (file:line and reason) and skipped; the good rows are returned. err
// is set only when the file cannot be read at all. A JSON syntax error inside
// an alpaca array ends the array there: it is reported as a row error and the
// rows before it are kept.
func ReadFile(path string, f Format) ([]Example, []RowError, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("dataformat: %w", err)
	}
	switch f {
	case Alpaca:
		ex, bad := readAlpaca(path, data)
		return ex, bad, nil
	case GPT, ShareGPT:
		ex, bad := readJSONL(path, data, f)
		return ex, bad, nil
	}
	return nil, nil, fmt.Errorf("dataformat: unknown format %q", f)
}

// alpacaRow is one FireAct alpaca element.
type alpacaRow struct {
	Instruction *string `json:"instruction"`
	Input       *string `json:"input"`
	Output      *string `json:"output"`
}

func readAlpaca(path string, data []byte) ([]Example, []RowError) {
	var out []Example
	var bad []RowError
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(off int64, elem int, reason string) {
		bad = append(bad, RowError{File: path, Line: lineAt(data, off), Element: elem, Reason: reason})
	}
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		fail(0, -1, "not a JSON array of {instruction, input, output}")
		return nil, bad
	}
	for elem := 0; dec.More(); elem++ {
		start := skipSpace(data, dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			fail(start, elem, "invalid JSON: "+err.Error()+"; rows after it are not read")
			return out, bad
		}
		line := lineAt(data, start)
		t, err := alpacaExample(raw)
		if err != nil {
			fail(start, elem, err.Error())
			continue
		}
		out = append(out, Example{Row: elem, Line: line, Trajectory: t})
	}
	if _, err := dec.Token(); err != nil {
		fail(dec.InputOffset(), -1, "unterminated array: "+err.Error())
	}
	return out, bad
}

// optionLinesRE matches text made only of "A. ..." to "D. ..." lines.
var optionLinesRE = regexp.MustCompile(`^(?:[A-D][.)] [^\n]*\n)+$`)

func alpacaExample(raw json.RawMessage) (trajectory.Trajectory, error) {
	var r alpacaRow
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return trajectory.Trajectory{}, fmt.Errorf("not an {instruction, input, output} object: %v", err)
	}
	switch {
	case r.Instruction == nil || strings.TrimSpace(*r.Instruction) == "":
		return trajectory.Trajectory{}, errors.New("missing or empty instruction")
	case r.Output == nil || strings.TrimSpace(*r.Output) == "":
		return trajectory.Trajectory{}, errors.New("missing or empty output")
	case r.Input != nil && *r.Input != "":
		return trajectory.Trajectory{}, errors.New("non-empty input: FireAct rows keep the question in instruction")
	}
	t := trajectory.Parse(*r.Output)
	if len(t.Steps) == 0 {
		return trajectory.Trajectory{}, errors.New("output has no Thought/Action/Observation step")
	}
	t.Question = *r.Instruction
	// FireAct's alpaca multitask files put the MMLU options at the start of the
	// output instead of after the question (their gpt files have them right).
	// The options belong to the question: move them there, so the stored
	// question is what the model was asked and an export puts them right.
	if t.Prefix != "" && optionLinesRE.MatchString(t.Prefix) {
		t.Question += "\n" + strings.TrimSuffix(t.Prefix, "\n")
		t.Prefix = ""
	}
	Classify(&t, Alpaca)
	return t, nil
}

// chatRowJSON is one gpt or ShareGPT JSONL row.
type chatRowJSON struct {
	Messages      []Message `json:"messages"`
	Conversations []struct {
		From  string `json:"from"`
		Value string `json:"value"`
	} `json:"conversations"`
}

func readJSONL(path string, data []byte, f Format) ([]Example, []RowError) {
	var out []Example
	var bad []RowError
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	row := 0
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		t, err := chatExample(b, f)
		if err != nil {
			bad = append(bad, RowError{File: path, Line: line, Element: -1, Reason: err.Error()})
		} else {
			out = append(out, Example{Row: row, Line: line, Trajectory: t})
		}
		row++
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, RowError{File: path, Line: -1, Element: -1, Reason: err.Error()})
	}
	return out, bad
}

func chatExample(b []byte, f Format) (trajectory.Trajectory, error) {
	var r chatRowJSON
	if err := json.Unmarshal(b, &r); err != nil {
		return trajectory.Trajectory{}, fmt.Errorf("invalid JSON: %v", err)
	}
	ms := r.Messages
	if f == ShareGPT {
		if r.Conversations == nil {
			return trajectory.Trajectory{}, errors.New(`no "conversations" list`)
		}
		ms = nil
		for _, c := range r.Conversations {
			role := map[string]string{"human": "user", "gpt": "assistant", "system": "system"}[c.From]
			if role == "" {
				role = c.From
			}
			ms = append(ms, Message{Role: role, Content: c.Value})
		}
	} else if r.Messages == nil {
		return trajectory.Trajectory{}, errors.New(`no "messages" list`)
	}
	t, err := chatRow(ms)
	if err != nil {
		return trajectory.Trajectory{}, err
	}
	if len(t.Steps) == 0 {
		return trajectory.Trajectory{}, errors.New("no Thought/Action/Observation step")
	}
	Classify(&t, f)
	return t, nil
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// skipSpace advances off past white space and a comma, to where the next
// array element starts.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}
