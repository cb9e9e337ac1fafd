package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/fireact/fireact/store"
)

// RunConfigVersion marks a run configuration recorded as a RunConfig; older
// runs recorded a loose map of flag values that cannot be checked.
const RunConfigVersion = 1

// RunConfig is the configuration a run records, marshalled as it is. A run is
// resumed only with the same configuration (CheckResume): every field shapes
// the episodes except those tagged resume:"-" (speed and memory, the question
// selection, paths whose content is identified by a hash).
type RunConfig struct {
	Version int `json:"version"`

	Backend     string   `json:"backend"`
	Model       string   `json:"model" resume:"-"`
	ModelID     string   `json:"model_id"` // sha256 of the file, or the API's model name
	Adapters    []string `json:"adapters,omitempty" resume:"-"`
	AdapterIDs  []string `json:"adapter_ids,omitempty"` // sha256@scale of each adapter
	BaseURL     string   `json:"base_url,omitempty" resume:"-"`
	Completions bool     `json:"completions,omitempty"`

	Method      string  `json:"method"`
	Format      string  `json:"format"`
	PromptFile  string  `json:"prompt_file,omitempty" resume:"-"`
	PromptHash  string  `json:"prompt_hash"` // sha256 of the few-shot text
	Grammar     bool    `json:"grammar"`
	Temperature float64 `json:"temperature"`
	TopP        float64 `json:"top_p"`
	MaxTokens   int     `json:"max_tokens"`
	MaxTurns    int     `json:"max_turns"`
	Seed        int64   `json:"seed"`
	OracleRetry bool    `json:"oracle_retry"`
	// Scoring is the task's scorer set (fireact or lenient): it changes EM,
	// so a resume under another one is refused.
	Scoring string `json:"scoring,omitempty"`

	Search    string  `json:"search"`
	Corpus    string  `json:"corpus,omitempty"`
	Noise     float64 `json:"noise"`
	NoiseKind string  `json:"noise_kind,omitempty"`
	// SearchStyle is "react" for ReAct's Wikipedia observations and lookup
	// (SearchStyleReAct), "" for FireAct's snippets, so that runs recorded
	// before styles existed resume unchanged.
	SearchStyle string `json:"search_style,omitempty"`

	Concurrency  int    `json:"concurrency" resume:"-"`
	Threads      int    `json:"threads,omitempty" resume:"-"`
	GPULayers    int    `json:"gpu_layers,omitempty" resume:"-"`
	KV           int    `json:"kv,omitempty" resume:"-"`
	PerRequestKV int    `json:"per_request_kv,omitempty" resume:"-"`
	Order        string `json:"order,omitempty" resume:"-"`
	Offset       int    `json:"offset,omitempty" resume:"-"`
	Limit        int    `json:"limit,omitempty" resume:"-"`
}

// NewRunConfig is the configuration of a run of agent a on the LLM ls (nil for
// an LLM built elsewhere, which then has no identity here) with the search
// options so.
func NewRunConfig(ls *LLMSetup, a *Agent, so SearchOptions) RunConfig {
	c := RunConfig{Version: RunConfigVersion,
		Method: a.Method.Name, Format: string(a.Prompt.Format), PromptHash: TextHash(a.Prompt.FewShot),
		Grammar: a.Grammar, Temperature: a.Sampling.Temperature, TopP: a.Sampling.TopP,
		MaxTokens: a.Sampling.MaxTokens, MaxTurns: a.Method.MaxTurns, Seed: a.Sampling.Seed,
		OracleRetry: a.OracleRetry && a.Method.RetryWrong > 0,
		Search:      so.Backend, Noise: so.Noise}
	if c.MaxTokens <= 0 {
		c.MaxTokens = defaultMaxTokens
	}
	if c.MaxTurns <= 0 {
		c.MaxTurns = DefaultMaxTurns
	}
	if c.Search == "" {
		c.Search = SearchNone
	}
	if c.Search == SearchLocal || c.Search == SearchReplay {
		c.Corpus = so.Corpus
	}
	if st, err := ParseSearchStyle(so.Style); err == nil && st != SearchStyleFireAct {
		c.SearchStyle = st
	} else if err != nil {
		c.SearchStyle = so.Style // NewSearch refuses it; record what was asked
	}
	if so.Noise > 0 {
		c.NoiseKind = so.NoiseKind
		if c.NoiseKind == "" {
			c.NoiseKind = NoiseMixed
		}
	}
	if ls != nil {
		o := ls.opts
		c.Backend, c.Model, c.ModelID, c.AdapterIDs = o.Backend, o.Model, ls.ModelID, ls.AdapterIDs
		if c.Backend == "" {
			c.Backend = BackendLocal
		}
		for _, l := range o.LoRAs {
			c.Adapters = append(c.Adapters, l.Path)
		}
		c.BaseURL, c.Completions = o.BaseURL, o.Completions
		c.Concurrency, c.Threads, c.GPULayers, c.KV, c.PerRequestKV = ls.Concurrency, o.Threads, o.GPULayers, o.KV, ls.PerRequestKV
	}
	return c
}

// JSON is the configuration as the run records it.
func (c RunConfig) JSON() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("agent: marshal run config: %v", err)) // plain fields only: cannot happen
	}
	return string(b)
}

// ParseRunConfig reads a recorded configuration; ok is false for one that is
// not a RunConfig (an older run, an import, a demo run).
func ParseRunConfig(s string) (RunConfig, bool) {
	var c RunConfig
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.Version == 0 {
		return RunConfig{}, false
	}
	return c, true
}

// CheckResume returns an error naming the first field in which the
// configuration of a resumed run (recorded) differs from this invocation's
// (now). Both go through the store's redaction first, as the recorded one did.
func CheckResume(recorded string, now RunConfig) error {
	red, err := store.RedactConfig(now.JSON())
	if err != nil {
		return err
	}
	cur, _ := ParseRunConfig(red)
	old, ok := ParseRunConfig(recorded)
	if !ok {
		return fmt.Errorf("it was recorded without a checkable configuration (an older fireact); its episodes may come from another model or prompt")
	}
	if old.Version != cur.Version {
		return fmt.Errorf("its configuration has version %d, this fireact writes %d", old.Version, cur.Version)
	}
	ov, cv := reflect.ValueOf(old), reflect.ValueOf(cur)
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("resume") == "-" {
			continue
		}
		a, _ := json.Marshal(ov.Field(i).Interface())
		b, _ := json.Marshal(cv.Field(i).Interface())
		if !bytes.Equal(a, b) {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			return fmt.Errorf("%s differs: recorded %s, now %s", name, a, b)
		}
	}
	return nil
}

// StoreRun is the run record of a run with configuration c: its identity
// columns and the configuration itself.
func (c RunConfig) StoreRun(name, kind, task, split string) store.Run {
	r := store.Run{Name: name, Kind: kind, Config: c.JSON(), Model: c.Model, Method: c.Method,
		Task: task, Split: split, Noise: c.Noise, Seed: c.Seed,
		Adapter: strings.Join(c.Adapters, ","), AdapterHash: strings.Join(c.AdapterIDs, ",")}
	if c.Backend == BackendLocal {
		r.ModelHash = c.ModelID
	}
	return r
}
