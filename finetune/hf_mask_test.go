package finetune

import (
	"github.com/fireact/fireact/llama/hf/hftest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fireact/fireact/llama"
)

const tokenizersDir = "../../shared/data/tokenizers"

// hfTokenizerModel converts a real Hugging Face tokenizer into a vocab-only
// GGUF model and loads it: enough to render chat templates and tokenize.
func hfTokenizerModel(t *testing.T, name string) *llama.Model {
	t.Helper()
	path := hftest.WriteTokenizerModel(t, filepath.Join(tokenizersDir, name))
	return loadModel(t, path, llama.ModelOptions{VocabOnly: true})
}

// TestMaskChatRealTokenizers checks the loss mask of chat-template training
// text on the real tokenizers: the example has exactly the tokens inference
// gets for the whole text (no piece-wise fallback, also for Mistral, whose SPM
// space prefix llama.cpp adds again after every special token such as "</s>"),
// and the scored tokens spell each assistant message and its end of turn. A
// token straddling the border between template and message is scored
// (Mistral's "▁Thought" after "[/INST]"; hence the leading spaces there).
func TestMaskChatRealTokenizers(t *testing.T) {
	const turn1, turn2 = "Thought: I need to search the city.\nAction: search[the city]", "Thought: So the answer is Paris.\nAction: finish[Paris]"
	for _, c := range []struct {
		name, tmpl string
		want       string
	}{
		{"llama-3.1", "", turn1 + "<|eot_id|>" + turn2 + "<|eot_id|>"},
		{"qwen3", "chatml", turn1 + "<|im_end|>" + turn2 + "<|im_end|>"},
		// Qwen3's own Jinja template, which does not render incrementally.
		{"qwen3", "", turn1 + "<|im_end|>" + turn2 + "<|im_end|>"},
		{"gemma-3", "", turn1 + "<end_of_turn>" + turn2 + "<end_of_turn>"},
		{"mistral-v0.1", "mistral-v1", " " + turn1 + "</s> " + turn2 + "</s>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := hfTokenizerModel(t, c.name)
			segs, err := Segments(sampleTrajectory(), TemplateChat, m, c.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := Encode(m, segs, EncodeOptions{NoEOS: true})
			if err != nil {
				t.Fatal(err)
			}
			whole, err := m.Tokenize(joinSegments(segs), llama.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
			if err != nil {
				t.Fatal(err)
			}
			if ex.PieceWise || !slices.Equal(whole, ex.Tokens) {
				t.Errorf("piece-wise %v: tokens %v\nwhole text %v", ex.PieceWise, ex.Tokens, whole)
			}
			var got []byte
			for i, tok := range ex.Tokens {
				if ex.Target[i] {
					got = append(got, m.TokenPiece(tok, true)...)
				}
			}
			if string(got) != c.want {
				t.Errorf("scored text\n%q\nwant\n%q", got, c.want)
			}

			// Qwen3 has no BOS, so llama.cpp reports its default BPE BOS id,
			// 11, which is ","; a text starting with it must not lose its
			// first token to the BOS rule.
			ex, err = Encode(m, []Segment{{Text: ", then", Scored: true}}, EncodeOptions{NoEOS: true})
			if err != nil {
				t.Fatal(err)
			}
			if ex.PieceWise {
				t.Errorf("%q encoded piece-wise: %v", ", then", ex.Tokens)
			}
		})
	}
}

// TestMaskChatQwen3Template checks the mask on Qwen3's own template (rendered
// as Hugging Face renders it) for a conversation ending with the assistant:
// the template gives the last turn an empty reasoning block that the
// generation prompt does not contain, so the model writes it and it is scored;
// the earlier turn, rendered without one in the whole conversation, is found
// there all the same.
func TestMaskChatQwen3Template(t *testing.T) {
	m := hfTokenizerModel(t, "qwen3")
	tr := sampleTrajectory()
	tr.Steps[len(tr.Steps)-1].Observation = ""
	segs, err := Segments(tr, TemplateChat, m, "")
	if err != nil {
		t.Fatal(err)
	}
	text := joinSegments(segs)
	const want = "<|im_start|>user\nWhat is the capital city of the country?<|im_end|>\n" +
		"<|im_start|>assistant\nThought: I need to search the city.\nAction: search[the city]<|im_end|>\n" +
		"<|im_start|>user\nObservation: The city is Paris.<|im_end|>\n" +
		"<|im_start|>assistant\n<think>\n\n</think>\n\nThought: So the answer is Paris.\nAction: finish[Paris]<|im_end|>\n"
	if text != want {
		t.Fatalf("training text\n%q\nwant Hugging Face's\n%q", text, want)
	}
	ex, err := Encode(m, segs, EncodeOptions{NoEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if ex.PieceWise {
		t.Fatalf("encoded piece-wise")
	}
	var got []byte
	for i, tok := range ex.Tokens {
		if ex.Target[i] {
			got = append(got, m.TokenPiece(tok, true)...)
		}
	}
	const scored = "Thought: I need to search the city.\nAction: search[the city]<|im_end|>" +
		"<think>\n\n</think>\n\nThought: So the answer is Paris.\nAction: finish[Paris]<|im_end|>"
	if string(got) != scored {
		t.Errorf("scored text\n%q\nwant\n%q", got, scored)
	}
}
