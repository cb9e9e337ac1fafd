package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
)

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "print how a model's tokenizer splits a text (like llama.cpp's llama-tokenize)",
		ArgsUsage: "(TEXT | --file F | --stdin)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model `FILE` (only its vocabulary is loaded)", Required: true, EnvVars: []string{"FIREACT_MODEL"}},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the text from `FILE`"},
			&cli.BoolFlag{Name: "stdin", Usage: "read the text from standard input"},
			&cli.BoolFlag{Name: "ids", Usage: "print only the token ids, as one JSON array"},
			&cli.BoolFlag{Name: "no-add-special", Usage: "do not add the BOS/EOS tokens the model's tokenizer adds"},
			&cli.BoolFlag{Name: "parse-special", Usage: "turn special-token text such as <|im_start|> into the special token"},
		},
		Action: func(c *cli.Context) error {
			text, err := tokenizeInput(c)
			if err != nil {
				return err
			}
			m, err := llama.LoadModel(c.String("model"), llama.ModelOptions{VocabOnly: true})
			if err != nil {
				return err
			}
			defer m.Close()
			toks, err := m.Tokenize(text, llama.TokenizeOptions{AddSpecial: !c.Bool("no-add-special"), ParseSpecial: c.Bool("parse-special")})
			if err != nil {
				return err
			}
			w := c.App.Writer
			if c.Bool("ids") {
				if toks == nil {
					toks = []llama.Token{}
				}
				b, err := json.Marshal(toks)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			for _, t := range toks {
				// The layout of llama-tokenize's output; pieces are raw bytes
				// (a byte-fallback token may hold part of a UTF-8 character).
				if _, err := fmt.Fprintf(w, "%6d -> '%s'\n", t, m.TokenPiece(t, true)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// tokenizeInput returns the text from exactly one of the TEXT argument,
// --file and --stdin.
func tokenizeInput(c *cli.Context) (string, error) {
	n := 0
	for _, set := range []bool{c.NArg() > 0, c.IsSet("file"), c.Bool("stdin")} {
		if set {
			n++
		}
	}
	if n != 1 || c.NArg() > 1 {
		return "", fmt.Errorf("tokenize: give the text as exactly one of: one TEXT argument, --file F, --stdin")
	}
	switch {
	case c.IsSet("file"):
		b, err := os.ReadFile(c.String("file"))
		if err != nil {
			return "", fmt.Errorf("tokenize: %w", err)
		}
		return string(b), nil
	case c.Bool("stdin"):
		b, err := io.ReadAll(c.App.Reader)
		if err != nil {
			return "", fmt.Errorf("tokenize: read standard input: %w", err)
		}
		return string(b), nil
	}
	return c.Args().First(), nil
}
