// Package chattmpl renders a model's chat template (the Jinja text Hugging Face
// keeps as chat_template in tokenizer_config.json and a GGUF file as
// tokenizer.chat_template) the way Hugging Face transformers'
// apply_chat_template renders it, byte for byte, so that the text fireact
// trains a student on is the text HF, vLLM and llama-server (with --jinja)
// prompt it with. It is pure Go; llama.cpp's own built-in renderings (chatml,
// llama3, ... by name) stay with the llama package.
//
// The Jinja engine is github.com/ardanlabs/jinja (v1.8.0), chosen after
// rendering the real templates of Llama-3.1, Qwen3, Gemma-3 and Mistral
// (Instruct-v0.1; the v0.1 base model has none) with three Go engines against
// jinja2 3.1.6 set up as transformers sets it up (testdata/gen.py):
//
//   - ardanlabs/jinja v1.8.0 rendered every reference case exactly. It is
//     written for LLM chat templates: Hugging Face's trim_blocks and
//     lstrip_blocks are built in, as are raise_exception, strftime_now,
//     namespace, Python string methods (startswith, split, lstrip, ...),
//     slices such as messages[::-1], loop controls, and a tojson that keeps
//     non-ASCII text and dict order as Python's json.dumps does. No
//     dependencies, no mutable global state, compiled templates are safe for
//     concurrent use.
//   - nikolalohinski/gonja/v2 v2.9.1 rendered Llama-3.1, Qwen3 and Mistral but
//     could not parse Gemma-3's template (a parenthesized inline if:
//     "(first_user_prefix if loop.first else "")"), and its tojson sorts keys
//     and drops json.dumps' spaces; it also brings logrus and keeps its
//     configuration in package-level variables.
//   - flosch/pongo2/v6 v6.0.0 is Django's dialect, not Jinja's: it rejected
//     every real template (newlines and "\n" escapes in string literals) and
//     has no tojson.
package chattmpl

import (
	"errors"
	"fmt"

	"github.com/ardanlabs/jinja"
)

// Message is one message of a conversation, as a chat template sees it
// (message.role, message.content).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Template is a compiled chat template with the special-token texts it is
// rendered with. It is safe for concurrent use.
type Template struct {
	src      string
	t        *jinja.Template
	bos, eos string
}

// Compile compiles a Jinja chat template. bos and eos are the texts the
// template gets as bos_token and eos_token (Hugging Face's special tokens of
// the tokenizer); an empty one is left undefined, as transformers leaves a
// special token the tokenizer does not have.
func Compile(src, bos, eos string) (*Template, error) {
	if src == "" {
		return nil, errors.New("chattmpl: empty chat template")
	}
	t, err := compile(src)
	if err != nil {
		return nil, fmt.Errorf("chattmpl: compile the chat template: %w", err)
	}
	return &Template{src: src, t: t, bos: bos, eos: eos}, nil
}

// compile guards against a panic in the engine: a template comes from a model
// file, and a bad one must be an error, not a crashed server.
func compile(src string) (t *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("jinja: %v", r)
		}
	}()
	return jinja.Compile(src)
}

// Source returns the template text.
func (t *Template) Source() string { return t.src }

// Render renders msgs as transformers' apply_chat_template(msgs,
// tokenize=False, add_generation_prompt=addGenerationPrompt) does: with
// messages, add_generation_prompt, tools and documents (none), and the
// special tokens. addGenerationPrompt appends the opening of an assistant
// turn, for generation. A template that calls raise_exception (Gemma's and
// Mistral's insist on alternating user and assistant roles) gives its message
// as the error.
func (t *Template) Render(msgs []Message, addGenerationPrompt bool) (out string, err error) {
	ms := make([]any, len(msgs))
	for i, m := range msgs {
		ms[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := map[string]any{
		"messages":              ms,
		"add_generation_prompt": addGenerationPrompt,
		// transformers passes these as None when the call has none; a
		// template may test "tools is none" as well as "if tools".
		"tools":     nil,
		"documents": nil,
	}
	if t.bos != "" {
		data["bos_token"] = t.bos
	}
	if t.eos != "" {
		data["eos_token"] = t.eos
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("chattmpl: render the chat template: jinja: %v", r)
		}
	}()
	out, err = t.t.Render(data)
	if err != nil {
		return "", fmt.Errorf("chattmpl: render the chat template: %w", err)
	}
	return out, nil
}

// Render compiles src and renders msgs with it; see Template.Render. Compile
// once and reuse the Template to render many conversations.
func Render(src string, msgs []Message, addGenerationPrompt bool, bos, eos string) (string, error) {
	t, err := Compile(src, bos, eos)
	if err != nil {
		return "", err
	}
	return t.Render(msgs, addGenerationPrompt)
}
