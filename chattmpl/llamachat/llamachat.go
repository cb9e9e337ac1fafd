// Package llamachat renders chat conversations for a loaded llama model: the
// model's own chat template (tokenizer.chat_template, Jinja) as Hugging Face
// and llama-server with --jinja render it (package chattmpl), or one of
// llama.cpp's built-in renderings when asked for by name (chatml, llama3, ...).
// Training (finetune), evaluation and runs (agent) and the server (agent/serve)
// all render through it, so a student is prompted with the text it was
// trained on, and that text is the one the rest of the world prompts it with.
package llamachat

import (
	"fmt"
	"strings"

	"github.com/fireact/fireact/chattmpl"
	"github.com/fireact/fireact/llama"
)

// Renderer renders conversations for one model with one template. It is safe
// for concurrent use.
type Renderer struct {
	m *llama.Model
	// builtin is the llama.cpp built-in name to render with; "" when tmpl is used.
	builtin string
	tmpl    *chattmpl.Template
	// stripBOS is the BOS text to drop from the start of a rendering: the
	// model's tokenizer adds the BOS token itself (add_bos_token), and a
	// template that writes it too would give two.
	stripBOS string
}

// New picks the chat template for m. override, when not empty, is either the
// name of one of llama.cpp's built-in renderings (llama.BuiltinChatTemplates;
// rendered by llama.cpp, as a --chat-template NAME override) or a Jinja
// template text; when empty, the model's own tokenizer.chat_template is
// rendered as Jinja. A model without a template, a name that is neither
// built in nor a template, and a template the Jinja engine cannot compile are
// errors.
func New(m *llama.Model, override string) (*Renderer, error) {
	if m == nil {
		return nil, fmt.Errorf("llamachat: no model")
	}
	r := &Renderer{m: m}
	src := override
	if override != "" && llama.IsBuiltinChatTemplate(override) {
		r.builtin = override
		return r, nil
	}
	if override != "" && !strings.Contains(override, "{{") && !strings.Contains(override, "{%") {
		// Not Jinja at all: most likely a mistyped name, which would otherwise
		// render as that literal text for every conversation.
		return nil, fmt.Errorf("llamachat: chat template %q is neither a llama.cpp built-in name (%s) nor a Jinja template",
			override, strings.Join(llama.BuiltinChatTemplates(), ", "))
	}
	if src == "" {
		src = m.Info().ChatTemplate
	}
	if src == "" {
		return nil, fmt.Errorf("llamachat: model %s has no tokenizer.chat_template; give a chat template (a llama.cpp built-in name such as chatml, or a Jinja text)", m.Info().Path)
	}
	bos, eos := m.ChatTokens()
	t, err := chattmpl.Compile(src, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("llamachat: model %s: %w", m.Info().Path, err)
	}
	r.tmpl = t
	if m.Info().AddBOS {
		r.stripBOS = bos
	}
	return r, nil
}

// Builtin returns the llama.cpp built-in name the renderer uses, or "" when it
// renders a Jinja template.
func (r *Renderer) Builtin() string { return r.builtin }

// Render renders msgs; addGenerationPrompt appends the opening of an assistant
// turn, for generation. The text is the template's rendering less a leading
// BOS text when the tokenizer adds the BOS token itself, as llama-server does:
// tokenized with the model's special tokens (llama.TokenizeOptions AddSpecial
// and ParseSpecial) it gives the tokens Hugging Face's apply_chat_template
// gives, one BOS included.
func (r *Renderer) Render(msgs []llama.ChatMessage, addGenerationPrompt bool) (string, error) {
	if r.builtin != "" {
		s, err := r.m.ApplyChatTemplate(r.builtin, msgs, addGenerationPrompt)
		if err != nil {
			return "", fmt.Errorf("llamachat: %w", err)
		}
		return s, nil
	}
	ms := make([]chattmpl.Message, len(msgs))
	for i, m := range msgs {
		ms[i] = chattmpl.Message{Role: m.Role, Content: m.Content}
	}
	s, err := r.tmpl.Render(ms, addGenerationPrompt)
	if err != nil {
		return "", fmt.Errorf("llamachat: %w", err)
	}
	if r.stripBOS != "" {
		s = strings.TrimPrefix(s, r.stripBOS)
	}
	return s, nil
}
