package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
)

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "validate a GGUF model or adapter and print its metadata",
		ArgsUsage: "FILE.gguf",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "tensors", Usage: "list the tensors"},
			&cli.BoolFlag{Name: "no-load", Usage: "only validate the file; do not load it into llama.cpp"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("info: want exactly one FILE.gguf argument")
			}
			return runInfo(c.App.Writer, c.Args().First(), c.Bool("json"), c.Bool("tensors"), c.Bool("no-load"))
		},
	}
}

// infoReport is what `fireact info` prints.
type infoReport struct {
	Path      string            `json:"path"`
	Valid     bool              `json:"valid"`
	Kind      string            `json:"kind"` // model or adapter
	Version   uint32            `json:"gguf_version"`
	Tensors   int               `json:"n_tensors"`
	FileBytes int64             `json:"file_bytes"`
	Metadata  map[string]string `json:"metadata"`
	Model     *llama.ModelInfo  `json:"model,omitempty"`
	TensorTab []string          `json:"tensors,omitempty"`
}

func runInfo(w io.Writer, path string, asJSON, tensors, noLoad bool) error {
	f, err := gguf.Read(path)
	if err != nil {
		return err
	}
	rep := infoReport{Path: path, Valid: true, Kind: "model", Version: f.Version, Tensors: len(f.Tensors),
		FileBytes: f.FileSize, Metadata: map[string]string{}}
	if t, _ := f.String("general.type"); t == "adapter" {
		rep.Kind = "adapter"
	}
	for _, kv := range f.KVs {
		rep.Metadata[kv.Key] = summarizeValue(kv.Value)
	}
	if tensors {
		for _, t := range f.Tensors {
			rep.TensorTab = append(rep.TensorTab, fmt.Sprintf("%-40s %-6s %v", t.Name, t.Type, t.Shape))
		}
	}
	if rep.Kind == "model" && !noLoad {
		m, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: false})
		if err != nil {
			return err
		}
		info := m.Info()
		rep.Model = &info
		m.Close()
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "file:      %s (%d bytes, GGUF v%d, %d tensors) — valid\n", path, rep.FileBytes, rep.Version, rep.Tensors)
	fmt.Fprintf(w, "kind:      %s\n", rep.Kind)
	if m := rep.Model; m != nil {
		fmt.Fprintf(w, "model:     %s (%s)\n", m.Desc, m.Arch)
		fmt.Fprintf(w, "params:    %d (%.1f MiB)\n", m.NParams, float64(m.SizeBytes)/(1<<20))
		fmt.Fprintf(w, "shape:     n_embd %d, n_layer %d, n_head %d, n_head_kv %d, n_ctx_train %d\n", m.NEmbd, m.NLayer, m.NHead, m.NHeadKV, m.NCtxTrain)
		fmt.Fprintf(w, "vocab:     %s, %d tokens, BOS %d, EOS %d, EOT %d\n", m.VocabType, m.NVocab, m.BOS, m.EOS, m.EOT)
		if m.ChatTemplate != "" {
			fmt.Fprintf(w, "template:  %d bytes\n", len(m.ChatTemplate))
		}
	}
	keys := make([]string, 0, len(rep.Metadata))
	for k := range rep.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "metadata:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-45s %s\n", k, rep.Metadata[k])
	}
	if len(rep.TensorTab) > 0 {
		fmt.Fprintln(w, "tensors:")
		for _, t := range rep.TensorTab {
			fmt.Fprintln(w, "  "+t)
		}
	}
	return nil
}

// summarizeValue renders a metadata value on one line; long arrays are abbreviated.
func summarizeValue(v any) string {
	s := fmt.Sprint(v)
	switch a := v.(type) {
	case []string:
		if len(a) > 8 {
			s = fmt.Sprintf("[%s ...] (%d strings)", strings.Join(a[:8], " "), len(a))
		}
	case string:
		s = fmt.Sprintf("%q", a)
	default:
		if len(s) > 120 {
			s = s[:117] + "..."
		}
	}
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}
