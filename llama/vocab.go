package llama

/*
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// TokenizeOptions control special-token handling.
type TokenizeOptions struct {
	// AddSpecial adds the model's BOS (and EOS if its vocab says so), as llama.cpp's
	// add_special does.
	AddSpecial bool
	// ParseSpecial turns special-token text such as "<|im_start|>" into the special
	// token instead of plain text. Leave it off for untrusted text.
	ParseSpecial bool
}

// Tokenize converts text into tokens.
func (m *Model) Tokenize(text string, opts TokenizeOptions) ([]Token, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, err := m.handle(); err != nil {
		return nil, err
	}
	if len(text) > 1<<30 {
		return nil, fmt.Errorf("llama: tokenize: text of %d bytes is too long", len(text))
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	// SPM/BPE produce at most one token per byte, plus BOS/EOS and a space prefix;
	// llama_tokenize returns -needed when the guess is short, so retry once.
	capacity := len(text) + 8
	var n C.int32_t
	var buf *C.llama_token
	for attempt := 0; ; attempt++ {
		buf = (*C.llama_token)(C.malloc(C.size_t(capacity) * C.size_t(unsafe.Sizeof(C.llama_token(0)))))
		var errBuf [errBufLen]C.char
		n = C.fa_tokenize(m.vocab, ctext, C.int32_t(len(text)), buf, C.int32_t(capacity),
			C.bool(opts.AddSpecial), C.bool(opts.ParseSpecial), &errBuf[0], errBufLen)
		if n == C.INT32_MIN {
			C.free(unsafe.Pointer(buf))
			return nil, fmt.Errorf("llama: tokenize: %s", cErr(errBuf[:]))
		}
		if n >= 0 {
			break
		}
		C.free(unsafe.Pointer(buf))
		if attempt > 0 {
			return nil, fmt.Errorf("llama: tokenize: buffer sizing failed (%d tokens needed)", -n)
		}
		capacity = int(-n)
	}
	defer C.free(unsafe.Pointer(buf))
	src := unsafe.Slice((*int32)(unsafe.Pointer(buf)), int(n))
	out := make([]Token, n)
	for i, t := range src {
		out[i] = Token(t)
	}
	return out, nil
}

// TokenPiece returns the bytes a token stands for. Byte-fallback tokens give single
// bytes that may be part of a UTF-8 sequence; join pieces before converting to text.
// With special=false, control tokens (BOS, EOS, ...) render as nothing.
func (m *Model) TokenPiece(t Token, special bool) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil {
		return nil
	}
	return m.pieceLocked(t, special)
}

func (m *Model) pieceLocked(t Token, special bool) []byte {
	var small [64]byte
	n := C.llama_token_to_piece(m.vocab, C.llama_token(t), (*C.char)(unsafe.Pointer(&small[0])), C.int32_t(len(small)), 0, C.bool(special))
	if n >= 0 {
		return append([]byte(nil), small[:n]...)
	}
	big := make([]byte, -n)
	n = C.llama_token_to_piece(m.vocab, C.llama_token(t), (*C.char)(unsafe.Pointer(&big[0])), C.int32_t(len(big)), 0, C.bool(special))
	if n < 0 {
		return nil
	}
	return big[:n]
}

// Detokenize converts tokens back to text the way llama.cpp does (including the SPM
// leading-space rule). removeSpecial drops BOS/EOS; unparseSpecial renders control
// tokens as their text.
func (m *Model) Detokenize(tokens []Token, removeSpecial, unparseSpecial bool) (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, err := m.handle(); err != nil {
		return "", err
	}
	if len(tokens) == 0 {
		return "", nil
	}
	ctoks := (*C.llama_token)(C.malloc(C.size_t(len(tokens)) * C.size_t(unsafe.Sizeof(C.llama_token(0)))))
	defer C.free(unsafe.Pointer(ctoks))
	dst := unsafe.Slice((*int32)(unsafe.Pointer(ctoks)), len(tokens))
	for i, t := range tokens {
		if int(t) < 0 || int(t) >= m.info.NVocab {
			return "", fmt.Errorf("llama: detokenize: token %d at position %d is outside the vocabulary (%d)", t, i, m.info.NVocab)
		}
		dst[i] = int32(t)
	}
	size := len(tokens)*8 + 16
	for attempt := 0; attempt < 2; attempt++ {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := C.llama_detokenize(m.vocab, ctoks, C.int32_t(len(tokens)), buf, C.int32_t(size), C.bool(removeSpecial), C.bool(unparseSpecial))
		if n >= 0 {
			s := C.GoStringN(buf, n)
			C.free(unsafe.Pointer(buf))
			return s, nil
		}
		C.free(unsafe.Pointer(buf))
		size = int(-n) + 1
	}
	return "", fmt.Errorf("llama: detokenize: output buffer sizing failed")
}

// IsEOG reports whether t ends generation (EOS, EOT or another end-of-generation token).
func (m *Model) IsEOG(t Token) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil {
		return false
	}
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(t)))
}

// IsSpecial reports whether t is a control, user-defined or unknown token: one
// that llama.cpp matches as a whole in the text before tokenizing the plain text
// around it (and after which an SPM vocabulary with a space prefix prefixes the
// following text again).
func (m *Model) IsSpecial(t Token) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil || int(t) < 0 || int(t) >= m.info.NVocab {
		return false
	}
	attr := C.llama_vocab_get_attr(m.vocab, C.llama_token(t))
	return attr&(C.LLAMA_TOKEN_ATTR_CONTROL|C.LLAMA_TOKEN_ATTR_USER_DEFINED|C.LLAMA_TOKEN_ATTR_UNKNOWN) != 0
}

// TokenText returns the vocabulary's stored text of a token (e.g. "▁the", "<0x0A>").
func (m *Model) TokenText(t Token) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil || int(t) < 0 || int(t) >= m.info.NVocab {
		return ""
	}
	return C.GoString(C.llama_vocab_get_text(m.vocab, C.llama_token(t)))
}

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ApplyChatTemplate renders messages with the model's chat template (or tmpl, when
// not empty: a template text or a built-in name such as "chatml"). addAssistant
// appends the opening of an assistant turn, for generation.
//
// llama.cpp does not run Jinja: a template text is matched by heuristics to one
// of its built-in renderings, which can differ from what Hugging Face renders
// from the same text. Render a model's own template with the chattmpl package;
// this is for the built-in names (BuiltinChatTemplates).
func (m *Model) ApplyChatTemplate(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	if tmpl == "" {
		tmpl = m.info.ChatTemplate
	}
	if tmpl == "" {
		return "", fmt.Errorf("llama: chat template: model %s has no tokenizer.chat_template; pass one", m.info.Path)
	}
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))
	cmsgs := (*C.struct_llama_chat_message)(C.malloc(C.size_t(len(msgs)+1) * C.size_t(unsafe.Sizeof(C.struct_llama_chat_message{}))))
	defer C.free(unsafe.Pointer(cmsgs))
	view := unsafe.Slice(cmsgs, len(msgs)+1)
	total := 0
	for i, msg := range msgs {
		view[i].role = C.CString(msg.Role)
		view[i].content = C.CString(msg.Content)
		total += len(msg.Role) + len(msg.Content)
	}
	defer func() {
		for i := range msgs {
			C.free(unsafe.Pointer(view[i].role))
			C.free(unsafe.Pointer(view[i].content))
		}
	}()
	size := 2*total + 1024
	for attempt := 0; attempt < 2; attempt++ {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := C.llama_chat_apply_template(ctmpl, cmsgs, C.size_t(len(msgs)), C.bool(addAssistant), buf, C.int32_t(size))
		if n < 0 {
			C.free(unsafe.Pointer(buf))
			return "", fmt.Errorf("llama: chat template: llama.cpp does not support this template (it supports only its built-in ones)")
		}
		if int(n) <= size {
			s := C.GoStringN(buf, n)
			C.free(unsafe.Pointer(buf))
			return s, nil
		}
		C.free(unsafe.Pointer(buf))
		size = int(n) + 1
	}
	return "", fmt.Errorf("llama: chat template: output buffer sizing failed")
}

// BuiltinChatTemplates returns the names of llama.cpp's built-in chat
// renderings ("chatml", "llama3", "mistral-v1", ...): the names
// ApplyChatTemplate accepts as tmpl.
func BuiltinChatTemplates() []string {
	n := C.llama_chat_builtin_templates(nil, 0)
	if n <= 0 {
		return nil
	}
	names := make([]*C.char, n)
	n = C.llama_chat_builtin_templates(&names[0], C.size_t(len(names)))
	out := make([]string, 0, n)
	for _, p := range names[:n] {
		out = append(out, C.GoString(p))
	}
	return out
}

// IsBuiltinChatTemplate reports whether name is one of BuiltinChatTemplates.
func IsBuiltinChatTemplate(name string) bool {
	for _, b := range BuiltinChatTemplates() {
		if b == name {
			return true
		}
	}
	return false
}

// ChatTokens returns the texts a Jinja chat template gets as bos_token and
// eos_token: the BOS and EOS tokens' text ("<|begin_of_text|>", "<s>"), or ""
// for one the GGUF names no id for. llama.cpp falls back to a default id for
// a BPE vocabulary without one (Qwen3 has no BOS; the default, 11, is ","),
// which is not a token the model's tokenizer has as BOS.
func (m *Model) ChatTokens() (bos, eos string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil {
		return "", ""
	}
	text := func(key string, t Token) string {
		if _, ok := m.file.Get(key); !ok || t < 0 || int(t) >= m.info.NVocab {
			return ""
		}
		return string(m.pieceLocked(t, true))
	}
	return text("tokenizer.ggml.bos_token_id", m.info.BOS), text("tokenizer.ggml.eos_token_id", m.info.EOS)
}
