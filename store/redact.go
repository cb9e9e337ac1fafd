package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// Redacted replaces secret values in stored configuration.
const Redacted = "[redacted]"

// secretWords are key words whose values are secrets when they are the whole
// key or its last word ("openai_api_key", "authToken", "Authorization").
var secretWords = map[string]bool{
	"key": true, "apikey": true, "token": true, "secret": true, "password": true,
	"passwd": true, "authorization": true, "credential": true, "credentials": true,
	"cookie": true, "bearer": true,
}

// RedactConfig returns the JSON config with the values of secret-looking keys
// (api_key, key, token, authorization, password, ...) and secret-looking string
// values ("sk-...", "Bearer ...") replaced by Redacted, at any depth. API keys
// must never reach the database file, which users copy and share; the store
// enforces it so no caller can forget. Empty input gives "{}".
func RedactConfig(config string) (string, error) {
	if strings.TrimSpace(config) == "" {
		return "{}", nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(config))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("store: config is not JSON: %w", err)
	}
	b, err := json.Marshal(redact(v))
	if err != nil {
		return "", fmt.Errorf("store: encode config: %w", err)
	}
	return string(b), nil
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if secretKey(k) && val != nil {
				x[k] = Redacted
				continue
			}
			x[k] = redact(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
		return x
	case string:
		if secretValue(x) {
			return Redacted
		}
		return x
	}
	return v
}

// secretKey reports whether a JSON key names a secret: its last word (split at
// _, -, . and camelCase) or the whole lower-cased key is a secret word.
// "max_tokens" and "tokenizer" are not secrets; "openai_api_key" is.
func secretKey(k string) bool {
	words := splitWords(k)
	if len(words) == 0 {
		return false
	}
	if secretWords[strings.Join(words, "")] {
		return true
	}
	last := words[len(words)-1]
	if secretWords[last] {
		return true
	}
	// "api_key" splits into api+key, caught above; "apiKeyId" ends in "id" and
	// is not a secret.
	return false
}

func splitWords(k string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(k)
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ':
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

// secretValue reports whether a string value looks like a credential
// regardless of its key: OpenAI-style "sk-..." keys and bearer headers.
func secretValue(s string) bool {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "sk-") && len(t) >= 20 && !strings.ContainsAny(t, " \t\n") {
		return true
	}
	if len(t) > len("bearer ") && strings.EqualFold(t[:len("bearer ")], "bearer ") {
		tok := t[len("bearer "):]
		return len(tok) >= 3 && !strings.ContainsAny(tok, " \t\n")
	}
	return false
}
