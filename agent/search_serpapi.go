package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fireact/fireact/agent/turn"
)

// SerpAPIKeyEnv is the environment variable holding the SerpAPI key. The key
// is read from there only, never from flags (shell history) and never stored.
const SerpAPIKeyEnv = "SERPAPI_API_KEY"

// DefaultSerpAPIURL is SerpAPI's search endpoint.
const DefaultSerpAPIURL = "https://serpapi.com/search.json"

// SerpAPI is Google search through SerpAPI's JSON API, answering the way
// FireAct's tool does: the answer box's answer, else its snippet, else its
// first highlighted words, else the first organic result's snippet, else "None".
type SerpAPI struct {
	Key string
	// BaseURL overrides DefaultSerpAPIURL (tests point it at 127.0.0.1).
	BaseURL string
	// Client sends the requests; nil uses one that retries 429, 5xx and
	// timeouts (as NewSerpAPI's does).
	Client *http.Client
}

// serpAttemptTimeout bounds one SerpAPI request; Retry tries again after it.
const serpAttemptTimeout = 30 * time.Second

// serpMaxBody bounds a SerpAPI response (they are tens of kilobytes).
const serpMaxBody = 8 << 20

// NewSerpAPI returns a SerpAPI tool with the key from SERPAPI_API_KEY whose
// client retries 429, 5xx and timeouts with backoff, as the LLM clients do: a
// transient failure of the search API must not end an episode.
func NewSerpAPI(baseURL string) (*SerpAPI, error) {
	key := os.Getenv(SerpAPIKeyEnv)
	if key == "" {
		return nil, fmt.Errorf("serpapi: set %s", SerpAPIKeyEnv)
	}
	return &SerpAPI{Key: key, BaseURL: baseURL, Client: newSerpClient()}, nil
}

func newSerpClient() *http.Client {
	return &http.Client{Transport: &Retry{AttemptTimeout: serpAttemptTimeout, MaxResponseBytes: serpMaxBody}}
}

// serpResult is what FireAct's extract_answer reads from a SerpAPI response.
type serpResult struct {
	Error string
	// BoxAnswer, BoxSnippet and BoxHighlight are answer_box.answer,
	// .snippet and .snippet_highlighted_words[0].
	BoxAnswer, BoxSnippet, BoxHighlight string
	// OrganicSnippet is organic_results[0].snippet.
	OrganicSnippet string
}

// parseSerp decodes a SerpAPI response. Only a body that is not a JSON object
// is an error: SerpAPI's result blocks vary by query (an answer_box may be a
// list of boxes, an answer a number), so a field of another type than the one
// read is skipped, and the next source in FireAct's order answers instead.
func parseSerp(body []byte) (serpResult, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return serpResult{}, err
	}
	r := serpResult{Error: jsonString(top["error"])}
	if box := firstObject(top["answer_box"]); box != nil {
		r.BoxAnswer = jsonString(box["answer"])
		r.BoxSnippet = jsonString(box["snippet"])
		var words []json.RawMessage
		if json.Unmarshal(box["snippet_highlighted_words"], &words) == nil && len(words) > 0 {
			r.BoxHighlight = jsonString(words[0])
		}
	}
	if first := firstObject(top["organic_results"]); first != nil {
		r.OrganicSnippet = jsonString(first["snippet"])
	}
	return r, nil
}

// jsonString is raw as a string, or "" when it is absent or of another type.
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// firstObject is raw as an object, or the first element of raw as an array
// of objects; nil otherwise.
func firstObject(raw json.RawMessage) map[string]json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		return obj
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return nil
	}
	if json.Unmarshal(list[0], &obj) != nil {
		return nil
	}
	return obj
}

// Call implements Tool.
func (s *SerpAPI) Call(ctx context.Context, action, arg string) (Observation, error) {
	if action != turn.ActionSearch {
		return Observation{}, fmt.Errorf("serpapi: %w %q", ErrUnknownAction, action)
	}
	base := s.BaseURL
	if base == "" {
		base = DefaultSerpAPIURL
	}
	v := url.Values{"engine": {"google"}, "q": {arg}, "google_domain": {"google.com"},
		"gl": {"us"}, "hl": {"en"}, "api_key": {s.Key}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+v.Encode(), nil)
	if err != nil {
		return Observation{}, fmt.Errorf("serpapi: bad base URL: %w", stripURL(err))
	}
	client := s.Client
	if client == nil {
		client = newSerpClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL holds the key: report the cause only.
		return Observation{}, fmt.Errorf("serpapi: %w", stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, serpMaxBody))
	if err != nil {
		return Observation{}, fmt.Errorf("serpapi: read response: %w", err)
	}
	r, perr := parseSerp(body)
	if resp.StatusCode != http.StatusOK {
		msg := r.Error
		if perr != nil {
			msg = string(body)
		}
		if s.Key != "" {
			msg = strings.ReplaceAll(msg, s.Key, "[redacted]")
		}
		return Observation{}, fmt.Errorf("serpapi: HTTP %d: %s", resp.StatusCode, turn.Clip(msg, 200))
	}
	if perr != nil {
		return Observation{}, fmt.Errorf("serpapi: HTTP %d: bad JSON: %w", resp.StatusCode, perr)
	}
	return Observation{Text: serpAnswer(r)}, nil
}

// serpAnswer picks the observation in FireAct's order.
func serpAnswer(r serpResult) string {
	for _, a := range []string{r.BoxAnswer, r.BoxSnippet, r.BoxHighlight, r.OrganicSnippet} {
		if a != "" {
			return a
		}
	}
	return NoneObservation
}

// stripURL drops the request URL (which carries the API key) from an HTTP
// client error.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
