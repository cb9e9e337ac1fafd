package serve

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/fireact/fireact/llama"
)

// Backend is a resolved model name: the engine plus the adapters the name
// selects. It is what the agent endpoint's runner generates with.
type Backend struct {
	// Model is the name the request asked for, e.g. "tiny+hotpotqa".
	Model    string
	Engine   *llama.Engine
	Adapters []llama.AdapterScale
	// ChatTemplate is the template to render chat messages with ("" when the
	// model has none and the server was given none).
	ChatTemplate string
}

// Generate runs req on the engine with the backend's adapters.
func (b Backend) Generate(ctx context.Context, req llama.Request) (*llama.Result, error) {
	req.Adapters = b.Adapters
	res, err := b.Engine.Generate(ctx, req)
	if err != nil {
		return res, fmt.Errorf("serve: generate with %s: %w", b.Model, err)
	}
	return res, nil
}

// NamedAdapter is a LoRA adapter and the name it is served under.
type NamedAdapter struct {
	Name    string
	Adapter *llama.Adapter
	// Scale is the scale it is applied with (0 means 1).
	Scale float32
}

// validName is what a model or adapter name may contain: no "+", which joins
// them, and nothing that needs escaping in a URL path or a metrics label.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// ModelName is the base name of a model file without its .gguf extension:
// the default name a model or adapter is served under.
func ModelName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".gguf")
}

// ParseLoRASpec splits a --lora value "NAME=FILE" or "FILE" (the name is then
// the file's base name without .gguf).
func ParseLoRASpec(spec string) (name, path string, err error) {
	if spec == "" {
		return "", "", fmt.Errorf("serve: empty --lora value")
	}
	if i := strings.IndexByte(spec, '='); i > 0 {
		name, path = spec[:i], spec[i+1:]
	} else {
		name, path = ModelName(spec), spec
	}
	if path == "" {
		return "", "", fmt.Errorf("serve: --lora %q: no file", spec)
	}
	if !validName.MatchString(name) {
		return "", "", fmt.Errorf("serve: --lora %q: adapter name %q must match %s", spec, name, validName)
	}
	return name, path, nil
}

// registry maps model names to adapter sets.
type registry struct {
	base     string
	adapters map[string]llama.AdapterScale
	order    []string // adapter names, sorted
}

func newRegistry(base string, adapters []NamedAdapter) (*registry, error) {
	if !validName.MatchString(base) {
		return nil, fmt.Errorf("serve: model name %q must match %s", base, validName)
	}
	r := &registry{base: base, adapters: map[string]llama.AdapterScale{}}
	for _, a := range adapters {
		if !validName.MatchString(a.Name) {
			return nil, fmt.Errorf("serve: adapter name %q must match %s", a.Name, validName)
		}
		if a.Adapter == nil {
			return nil, fmt.Errorf("serve: adapter %q is nil", a.Name)
		}
		if _, dup := r.adapters[a.Name]; dup {
			return nil, fmt.Errorf("serve: two adapters named %q", a.Name)
		}
		scale := a.Scale
		if scale == 0 {
			scale = 1
		}
		r.adapters[a.Name] = llama.AdapterScale{Adapter: a.Adapter, Scale: scale}
		r.order = append(r.order, a.Name)
	}
	sort.Strings(r.order)
	return r, nil
}

// resolve returns the adapters a model name selects: "BASE" none,
// "BASE+A" adapter A, and "BASE+A+B" both stacked. An empty name means the
// base model, so that a bare curl call works.
func (r *registry) resolve(name string) ([]llama.AdapterScale, *APIError) {
	if name == "" || name == r.base {
		return nil, nil
	}
	parts := strings.Split(name, "+")
	if parts[0] != r.base || len(parts) < 2 {
		return nil, r.notFound(name)
	}
	seen := map[string]bool{}
	var out []llama.AdapterScale
	for _, p := range parts[1:] {
		a, ok := r.adapters[p]
		if !ok || seen[p] {
			return nil, r.notFound(name)
		}
		seen[p] = true
		out = append(out, a)
	}
	return out, nil
}

func (r *registry) notFound(name string) *APIError {
	return apiErrorf(http.StatusNotFound, ErrTypeInvalidRequest, "model_not_found",
		"the model %q does not exist; GET /v1/models lists the served models", name)
}

// list returns the base model and the base with each adapter.
func (r *registry) list(created int64) []ModelObject {
	out := []ModelObject{{ID: r.base, Object: "model", Created: created, OwnedBy: "fireact", Root: r.base}}
	for _, a := range r.order {
		out = append(out, ModelObject{ID: r.base + "+" + a, Object: "model", Created: created,
			OwnedBy: "fireact", Root: r.base, Adapter: a})
	}
	return out
}
