package finetune

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
)

// Keys of the usage metadata Run writes into every adapter it trains (beside
// llama.cpp's adapter.type and adapter.lora.alpha), all string-valued. They
// say how to prompt the adapter (its training format and chat template) and
// what it was trained from, so that eval, run and serve need no flags to use
// it right, and can tell when it is attached to another base.
const (
	// KeyFormat is the training text's format: "alpaca", "chat" or "text"
	// (plain language modelling: no prompt format).
	KeyFormat = "fireact.format"
	// KeyChatTemplate is the chat template the text was rendered with (format
	// chat only): the --chat-template override (a llama.cpp built-in name or a
	// template text) or else the base model's own template text.
	KeyChatTemplate = "fireact.chat_template"
	// KeyBaseSHA256 is the hex sha256 of the base GGUF file (store.FileHash,
	// the hash run records carry as the model's identity).
	KeyBaseSHA256 = "fireact.base.sha256"
	// KeyBaseName is the base file's name, for messages only.
	KeyBaseName = "fireact.base.name"
	// KeyRank, KeyAlpha and KeyTargets repeat the LoRA settings (alpha is
	// also in adapter.lora.alpha; targets as llama.ParseTargets reads them).
	KeyRank    = "fireact.lora.rank"
	KeyAlpha   = "fireact.lora.alpha"
	KeyTargets = "fireact.lora.targets"
	// KeyRecipe is the training recipe ("agent" or "fireact"); KeyTrainOnInputs
	// ("true"/"false") and KeyCutoff are the recipe settings that shape the
	// training text.
	KeyRecipe        = "fireact.recipe"
	KeyTrainOnInputs = "fireact.train_on_inputs"
	KeyCutoff        = "fireact.cutoff"
)

// FormatText is KeyFormat's value for an adapter trained on plain text.
const FormatText = "text"

// adapterMetadata is what Run records in the adapter: c after defaults and
// fit, the base model m and its file hash.
func (c *Config) adapterMetadata(m *llama.Model, baseHash string) map[string]string {
	kv := map[string]string{
		KeyBaseSHA256:    baseHash,
		KeyBaseName:      filepath.Base(c.Base),
		KeyRank:          strconv.Itoa(c.Rank),
		KeyAlpha:         strconv.FormatFloat(float64(c.Alpha), 'g', -1, 32),
		KeyTargets:       c.Targets.String(),
		KeyRecipe:        string(c.Recipe),
		KeyTrainOnInputs: strconv.FormatBool(c.TrainOnInputs || c.TextFile != ""),
		KeyCutoff:        strconv.Itoa(c.Cutoff),
	}
	switch {
	case c.TextFile != "":
		kv[KeyFormat] = FormatText
	case c.Template == TemplateChat:
		kv[KeyFormat] = string(TemplateChat)
		tmpl := c.ChatTemplate
		if tmpl == "" {
			tmpl = m.Info().ChatTemplate
		}
		// Empty when the model has none: llama.cpp's default then rendered the
		// text, as it will at inference.
		if tmpl != "" {
			kv[KeyChatTemplate] = tmpl
		}
	default:
		kv[KeyFormat] = string(TemplateAlpaca)
	}
	return kv
}

// AdapterUsage is the usage metadata read back from an adapter file. An
// adapter fireact did not train (converted from PEFT, made elsewhere) has
// none: Recorded is false and every field is zero.
type AdapterUsage struct {
	Path     string
	Recorded bool
	// Format is "alpaca", "chat" or "text".
	Format string
	// ChatTemplate is the chat template of a chat-format adapter ("" when the
	// base model had none).
	ChatTemplate string
	BaseSHA256   string
	BaseName     string
	Rank         int
	Alpha        float64
	Targets      string
	Recipe       string
}

// ReadAdapterUsage reads the usage metadata of the adapter at path. Malformed
// values are errors naming the file and the key.
func ReadAdapterUsage(path string) (AdapterUsage, error) {
	u := AdapterUsage{Path: path}
	f, err := gguf.Read(path)
	if err != nil {
		return u, fmt.Errorf("finetune: adapter usage: %w", err)
	}
	get := func(key string) (string, bool, error) {
		v, ok := f.Get(key)
		if !ok {
			return "", false, nil
		}
		s, ok := v.(string)
		if !ok {
			return "", false, fmt.Errorf("finetune: adapter %s: %s is a %T, want a string", path, key, v)
		}
		return s, true, nil
	}
	format, ok, err := get(KeyFormat)
	if err != nil || !ok {
		return u, err
	}
	switch format {
	case string(TemplateAlpaca), string(TemplateChat), FormatText:
	default:
		return u, fmt.Errorf("finetune: adapter %s: %s is %q, want alpaca, chat or text", path, KeyFormat, format)
	}
	u.Recorded, u.Format = true, format
	for _, s := range []struct {
		key string
		dst *string
	}{{KeyChatTemplate, &u.ChatTemplate}, {KeyBaseSHA256, &u.BaseSHA256}, {KeyBaseName, &u.BaseName},
		{KeyTargets, &u.Targets}, {KeyRecipe, &u.Recipe}} {
		if *s.dst, _, err = get(s.key); err != nil {
			return u, err
		}
	}
	if rank, ok, err := get(KeyRank); err != nil {
		return u, err
	} else if ok {
		if u.Rank, err = strconv.Atoi(rank); err != nil || u.Rank <= 0 {
			return u, fmt.Errorf("finetune: adapter %s: %s is %q, want a positive integer", path, KeyRank, rank)
		}
	}
	if alpha, ok, err := get(KeyAlpha); err != nil {
		return u, err
	} else if ok {
		if u.Alpha, err = strconv.ParseFloat(alpha, 64); err != nil {
			return u, fmt.Errorf("finetune: adapter %s: %s is %q, want a number", path, KeyAlpha, alpha)
		}
	}
	return u, nil
}

// PromptDefaults is what a set of adapters says about prompting the model
// they are attached to, for commands whose user gave no format.
type PromptDefaults struct {
	// Format is the agent prompt format ("alpaca" or "chat"), "" when no
	// adapter recorded one (or only "text").
	Format string
	// ChatTemplate is the chat template of a chat-format adapter ("": the
	// model's own).
	ChatTemplate string
	// Warnings say where the adapters disagree; the first adapter that
	// records a format wins.
	Warnings []string
}

// AdapterPromptDefaults reads the usage of every adapter in paths and returns
// them with the prompt defaults they imply.
func AdapterPromptDefaults(paths []string) ([]AdapterUsage, PromptDefaults, error) {
	var us []AdapterUsage
	var d PromptDefaults
	var from string
	for _, p := range paths {
		u, err := ReadAdapterUsage(p)
		if err != nil {
			return nil, d, err
		}
		us = append(us, u)
		if !u.Recorded || u.Format == FormatText {
			continue
		}
		if d.Format == "" {
			d.Format, d.ChatTemplate, from = u.Format, u.ChatTemplate, p
			continue
		}
		if u.Format != d.Format || (u.Format == string(TemplateChat) && u.ChatTemplate != d.ChatTemplate) {
			d.Warnings = append(d.Warnings, fmt.Sprintf("adapter %s was trained on format %s (%s), %s on %s: prompting as %s",
				p, u.Format, shortTemplate(u.ChatTemplate), from, d.Format, d.Format))
		}
	}
	return us, d, nil
}

// shortTemplate names a chat template in a message: a built-in name as is,
// a template text by its length.
func shortTemplate(t string) string {
	switch {
	case t == "":
		return "the model's template"
	case len(t) <= 24:
		return "template " + strconv.Quote(t)
	}
	return fmt.Sprintf("a %d-byte template", len(t))
}

// BaseWarning returns a warning when the adapter was trained on a base other
// than the file with sha256 baseHash ("" when it matches or nothing is
// recorded). A LoRA update learnt on other weights is not guaranteed to mean
// anything on these, even when the shapes agree.
func (u AdapterUsage) BaseWarning(baseHash string) string {
	if u.BaseSHA256 == "" || baseHash == "" || u.BaseSHA256 == baseHash {
		return ""
	}
	return fmt.Sprintf("adapter %s was trained on base %s (sha256 %s), not this model (sha256 %s): its output may be meaningless",
		u.Path, u.BaseName, shortSum(u.BaseSHA256), shortSum(baseHash))
}
