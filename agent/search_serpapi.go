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
	Client  *http.Client
}

// NewSerpAPI returns a SerpAPI tool with the key from SERPAPI_API_KEY.
func NewSerpAPI(baseURL string) (*SerpAPI, error) {
	key := os.Getenv(SerpAPIKeyEnv)
	if key == "" {
		return nil, fmt.Errorf("serpapi: set %s", SerpAPIKeyEnv)
	}
	return &SerpAPI{Key: key, BaseURL: baseURL, Client: &http.Client{Timeout: 30 * time.Second}}, nil
}

type serpResponse struct {
	Error     string `json:"error"`
	AnswerBox *struct {
		Answer                  string   `json:"answer"`
		Snippet                 string   `json:"snippet"`
		SnippetHighlightedWords []string `json:"snippet_highlighted_words"`
	} `json:"answer_box"`
	OrganicResults []struct {
		Snippet string `json:"snippet"`
	} `json:"organic_results"`
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
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL holds the key: report the cause only.
		return Observation{}, fmt.Errorf("serpapi: %w", stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return Observation{}, fmt.Errorf("serpapi: read response: %w", err)
	}
	var r serpResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return Observation{}, fmt.Errorf("serpapi: HTTP %d: bad JSON: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Observation{}, fmt.Errorf("serpapi: HTTP %d: %s", resp.StatusCode, turn.Clip(strings.ReplaceAll(r.Error, s.Key, "[redacted]"), 200))
	}
	return Observation{Text: serpAnswer(r)}, nil
}

func serpAnswer(r serpResponse) string {
	if b := r.AnswerBox; b != nil {
		switch {
		case b.Answer != "":
			return b.Answer
		case b.Snippet != "":
			return b.Snippet
		case len(b.SnippetHighlightedWords) > 0:
			return b.SnippetHighlightedWords[0]
		}
	}
	if len(r.OrganicResults) > 0 && r.OrganicResults[0].Snippet != "" {
		return r.OrganicResults[0].Snippet
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
