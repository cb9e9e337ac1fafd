package chattmpl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fireact/fireact/chattmpl/chattmpltest"
)

const tokenizersDir = "../../shared/data/tokenizers"

func loadFixture(t *testing.T) chattmpltest.References[Message] {
	t.Helper()
	return chattmpltest.Load[Message](t)
}

var str = chattmpltest.Str

// TestRenderMatchesTransformers renders every reference case and compares it
// byte for byte with jinja2's rendering (or checks that the template raises
// the same exception).
func TestRenderMatchesTransformers(t *testing.T) {
	f := loadFixture(t)
	if len(f.Cases) < 40 {
		t.Fatalf("only %d reference cases", len(f.Cases))
	}
	seen := map[string]bool{}
	for _, c := range f.Cases {
		tm, ok := f.Templates[c.Template]
		if !ok {
			t.Fatalf("case names unknown template %q", c.Template)
		}
		msgs, ok := f.Conversations[c.Conversation]
		if !ok {
			t.Fatalf("case names unknown conversation %q", c.Conversation)
		}
		seen[c.Template] = true
		got, err := Render(tm.Source, msgs, c.AddGenerationPrompt, str(tm.BOS), str(tm.EOS))
		switch {
		case c.Text == nil && err == nil:
			t.Errorf("%s/%s/%v: rendered %q, want the template's exception %q", c.Template, c.Conversation, c.AddGenerationPrompt, got, c.Error)
		case c.Text == nil && !strings.Contains(err.Error(), c.Error):
			t.Errorf("%s/%s/%v: error %q does not carry the template's message %q", c.Template, c.Conversation, c.AddGenerationPrompt, err, c.Error)
		case c.Text != nil && err != nil:
			t.Errorf("%s/%s/%v: %v", c.Template, c.Conversation, c.AddGenerationPrompt, err)
		case c.Text != nil && got != *c.Text:
			t.Errorf("%s/%s/%v:\ngot  %q\nwant %q", c.Template, c.Conversation, c.AddGenerationPrompt, got, *c.Text)
		}
	}
	for _, name := range []string{"llama-3.1", "qwen3", "gemma-3", "mistral-instruct-v0.1"} {
		if !seen[name] {
			t.Errorf("no reference case for %s", name)
		}
	}
}

// TestFixtureTemplatesAreTheReal checks that the fixture's templates and
// special tokens are those of the real tokenizer_config.json files, so a stale
// fixture cannot pass for the real thing.
func TestFixtureTemplatesAreTheReal(t *testing.T) {
	f := loadFixture(t)
	for _, name := range []string{"llama-3.1", "qwen3", "gemma-3", "mistral-v0.1"} {
		b, err := os.ReadFile(filepath.Join(tokenizersDir, name, "tokenizer_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			ChatTemplate *string `json:"chat_template"`
			BOS          *string `json:"bos_token"`
			EOS          *string `json:"eos_token"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "mistral-v0.1" {
			// A base model: gen.py uses its instruct sibling's template.
			if cfg.ChatTemplate != nil {
				t.Errorf("%s has a chat template now; regenerate the fixture with it", name)
			}
			continue
		}
		tm, ok := f.Templates[name]
		switch {
		case !ok:
			t.Errorf("%s: not in the fixture", name)
		case cfg.ChatTemplate == nil || tm.Source != *cfg.ChatTemplate:
			t.Errorf("%s: the fixture's template is not the tokenizer's", name)
		case str(tm.BOS) != str(cfg.BOS) || str(tm.EOS) != str(cfg.EOS):
			t.Errorf("%s: fixture tokens %q/%q, tokenizer's %q/%q", name, str(tm.BOS), str(tm.EOS), str(cfg.BOS), str(cfg.EOS))
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, src := range []string{"", "{% for m in messages %}no end", "{{ messages[ }}"} {
		if _, err := Compile(src, "", ""); err == nil {
			t.Errorf("Compile(%q) succeeded", src)
		} else if !strings.HasPrefix(err.Error(), "chattmpl: ") {
			t.Errorf("Compile(%q): error %q lacks context", src, err)
		}
	}
}

// TestConcurrentRender renders one compiled template from many goroutines (run
// with -race): the agent and the server share one per model.
func TestConcurrentRender(t *testing.T) {
	f := loadFixture(t)
	tm := f.Templates["qwen3"]
	tp, err := Compile(tm.Source, str(tm.BOS), str(tm.EOS))
	if err != nil {
		t.Fatal(err)
	}
	msgs := f.Conversations["react"]
	want, err := tp.Render(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := tp.Render(msgs, true)
				if err != nil || got != want {
					errs <- got
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for got := range errs {
		t.Errorf("concurrent render gave %q", got)
	}
}

// BenchmarkRender renders FireAct's ReAct conversation with each real
// template: what a chat request or one training example's renderings cost.
func BenchmarkRender(b *testing.B) {
	f := chattmpltest.Load[Message](b)
	msgs := f.Conversations["react"]
	for _, name := range []string{"llama-3.1", "qwen3", "gemma-3", "mistral-instruct-v0.1"} {
		tm := f.Templates[name]
		tp, err := Compile(tm.Source, str(tm.BOS), str(tm.EOS))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := tp.Render(msgs, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/compile", func(b *testing.B) {
			for b.Loop() {
				if _, err := Compile(tm.Source, "", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
