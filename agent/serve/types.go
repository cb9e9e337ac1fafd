package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// StringList is a JSON value that may be a single string or an array of
// strings, as OpenAI accepts for "prompt" and "stop".
type StringList []string

// UnmarshalJSON accepts "s", ["a","b"] and null.
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("want a string or an array of strings: %w", err)
	}
	*l = ss
	return nil
}

// StreamOptions are the options of a streamed response.
type StreamOptions struct {
	// IncludeUsage adds a last chunk, with no choices, carrying the usage counts.
	IncludeUsage bool `json:"include_usage"`
}

// Sampling holds the sampling fields shared by completions and chat
// completions. Pointers tell "absent" from zero: OpenAI clients such as
// go-openai omit a zero temperature, so absent must mean the server's default.
type Sampling struct {
	MaxTokens        *int       `json:"max_tokens,omitempty"`
	Temperature      *float32   `json:"temperature,omitempty"`
	TopP             *float32   `json:"top_p,omitempty"`
	N                *int       `json:"n,omitempty"`
	Stop             StringList `json:"stop,omitempty"`
	Seed             *int64     `json:"seed,omitempty"`
	FrequencyPenalty float32    `json:"frequency_penalty,omitempty"`
	PresencePenalty  float32    `json:"presence_penalty,omitempty"`
	// IgnoreEOS keeps generating past end-of-generation tokens up to max_tokens
	// (llama-server's and vLLM's extension, for load tests and benchmarks).
	IgnoreEOS bool `json:"ignore_eos,omitempty"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	Model         string         `json:"model"`
	Prompt        StringList     `json:"prompt"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
	Sampling
}

// Usage counts the tokens of a request.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// PromptTokensDetails tells how many prompt tokens the engine reused from its
	// KV cache instead of decoding them (OpenAI's prompt caching field).
	PromptTokensDetails *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// PromptTokensDetails breaks the prompt tokens down.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// CompletionChoice is one generated text of a completion.
type CompletionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// CompletionResponse is the body of a /v1/completions response, and (with
// Object "text_completion" too, as OpenAI does) of each streamed chunk.
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// ChatMessage is one message of a chat request or response.
type ChatMessage struct {
	Role    string         `json:"role"`
	Content MessageContent `json:"content"`
	Name    string         `json:"name,omitempty"`
}

// MessageContent is a message's text: OpenAI sends either a string or an
// array of parts ({"type":"text","text":...}); only text parts are supported.
type MessageContent string

// UnmarshalJSON accepts a string, null or an array of text parts.
func (c *MessageContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*c = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = MessageContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content: want a string or an array of parts: %w", err)
	}
	var buf bytes.Buffer
	for _, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf("content part of type %q is not supported (text only)", p.Type)
		}
		buf.WriteString(p.Text)
	}
	*c = MessageContent(buf.String())
	return nil
}

// ChatCompletionRequest is the body of POST /v1/chat/completions.
type ChatCompletionRequest struct {
	Model         string         `json:"model"`
	Messages      []ChatMessage  `json:"messages"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
	// MaxCompletionTokens is the newer name of max_tokens; it wins when both are set.
	MaxCompletionTokens *int `json:"max_completion_tokens,omitempty"`
	Sampling
}

// ChatChoice is one generated message of a chat completion.
type ChatChoice struct {
	Index        int         `json:"index"`
	Message      ChatMessage `json:"message"`
	Logprobs     any         `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

// ChatCompletionResponse is the body of a non-streamed /v1/chat/completions response.
type ChatCompletionResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   Usage        `json:"usage"`
}

// ChatDelta is the part of a message carried by one streamed chunk.
type ChatDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// ChatChunkChoice is one choice of a streamed chat chunk.
type ChatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        ChatDelta `json:"delta"`
	Logprobs     any       `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// ChatCompletionChunk is one server-sent event of a streamed chat completion.
type ChatCompletionChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []ChatChunkChoice `json:"choices"`
	Usage   *Usage            `json:"usage,omitempty"`
}

// ModelObject describes one servable model name.
type ModelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Root is the base model; Adapter the LoRA adapter name ("" for the base).
	Root    string `json:"root"`
	Adapter string `json:"adapter,omitempty"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string        `json:"object"`
	Data   []ModelObject `json:"data"`
}
