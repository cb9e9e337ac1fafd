// Package dataformat reads and writes fine-tuning data files: FireAct's alpaca
// JSON ({instruction, input, output}), OpenAI chat fine-tuning JSONL
// ({messages: [{role, content}]}, FireAct's "gpt_format") and ShareGPT JSONL
// ({conversations: [{from, value}]}, read by axolotl and LLaMA-Factory), and
// imports them into the store as trajectories / exports store datasets to them.
//
// All formats carry the same trajectory text, parsed and rendered by
// store/trajectory, so a file round-trips through the store without loss.
package dataformat

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fireact/fireact/store/trajectory"
)

// Format names a fine-tuning file format.
type Format string

// The supported formats.
const (
	Alpaca   Format = "alpaca"
	GPT      Format = "gpt"
	ShareGPT Format = "sharegpt"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Alpaca, GPT, ShareGPT:
		return f, nil
	case "openai", "chat":
		return GPT, nil
	case "chatml":
		return ShareGPT, nil
	}
	return "", fmt.Errorf("dataformat: unknown format %q (alpaca, gpt, sharegpt)", s)
}

// Example is one trajectory read from a file with where it came from.
type Example struct {
	// Row is the 0-based row number: the array element (alpaca) or the count of
	// non-blank lines before it (JSONL).
	Row int
	// Line is the 1-based line where the row starts.
	Line       int
	Trajectory trajectory.Trajectory
}

// RowError is a malformed row: where it is and why it was rejected.
type RowError struct {
	File    string
	Line    int // 1-based line of the row
	Element int // array element index for alpaca JSON; -1 for JSONL
	Reason  string
}

// Error formats the error as file:line: [element N: ]reason.
func (e RowError) Error() string {
	if e.Element >= 0 {
		return fmt.Sprintf("%s:%d: element %d: %s", e.File, e.Line, e.Element, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// DetectFormat guesses a file's format from its name: .json is alpaca,
// .jsonl is gpt unless the name mentions sharegpt.
func DetectFormat(path string) (Format, error) {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(base, ".json"):
		return Alpaca, nil
	case strings.HasSuffix(base, ".jsonl") && strings.Contains(base, "sharegpt"):
		return ShareGPT, nil
	case strings.HasSuffix(base, ".jsonl"):
		return GPT, nil
	}
	return "", fmt.Errorf("dataformat: cannot tell the format of %s (want .json or .jsonl)", path)
}
