package dataformat

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/fireact/fireact/store/trajectory"
)

// AlpacaRow is one FireAct alpaca training example.
type AlpacaRow struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// ShareGPTTurn is one turn of a ShareGPT conversation.
type ShareGPTTurn struct {
	From  string `json:"from"` // "human" or "gpt"
	Value string `json:"value"`
}

// ToAlpaca renders a trajectory as an alpaca row: the question as instruction,
// the trajectory text as output.
func ToAlpaca(t trajectory.Trajectory) AlpacaRow {
	return AlpacaRow{Instruction: t.Question, Input: "", Output: trajectory.Render(t)}
}

// ToShareGPT renders a trajectory as ShareGPT turns (the chat messages with
// user → human and assistant → gpt), so trainers score only the model's turns.
func ToShareGPT(t trajectory.Trajectory) []ShareGPTTurn {
	ms := ChatMessages(t)
	out := make([]ShareGPTTurn, len(ms))
	for i, m := range ms {
		from := "human"
		if m.Role == "assistant" {
			from = "gpt"
		}
		out[i] = ShareGPTTurn{From: from, Value: m.Content}
	}
	return out
}

// Write writes trajectories in format f: alpaca as one indented JSON array,
// gpt and sharegpt as one JSON object per line.
func Write(w io.Writer, f Format, ts []trajectory.Trajectory) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	switch f {
	case Alpaca:
		rows := make([]AlpacaRow, len(ts))
		for i, t := range ts {
			rows[i] = ToAlpaca(t)
		}
		enc.SetIndent("", "  ")
		return wrapWrite(enc.Encode(rows))
	case GPT:
		for _, t := range ts {
			if err := enc.Encode(struct {
				Messages []Message `json:"messages"`
			}{ChatMessages(t)}); err != nil {
				return wrapWrite(err)
			}
		}
		return nil
	case ShareGPT:
		for _, t := range ts {
			if err := enc.Encode(struct {
				Conversations []ShareGPTTurn `json:"conversations"`
			}{ToShareGPT(t)}); err != nil {
				return wrapWrite(err)
			}
		}
		return nil
	}
	return fmt.Errorf("dataformat: unknown format %q", f)
}

func wrapWrite(err error) error {
	if err != nil {
		return fmt.Errorf("dataformat: write: %w", err)
	}
	return nil
}
