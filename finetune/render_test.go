package finetune

import (
	"strings"
	"testing"

	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store/trajectory"
)

// wantAgent is what the agent wrote in sampleTrajectory, in order: thought and
// action lines and the hand-over to each observation.
const wantAgent = "Thought: I need to search the city.\nAction: search[the city]\nObservation:" +
	"Thought: So the answer is Paris.\nAction: finish[Paris]\nObservation:"

func TestBodySegmentsRenderExactly(t *testing.T) {
	rows, _, err := dataformat.ReadFile("../../shared/data/fireact/finetune/alpaca_format/multitask_multimethod.json", dataformat.Alpaca)
	if err != nil {
		t.Fatal(err)
	}
	reflections := 0
	for _, r := range rows {
		segs := BodySegments(r.Trajectory)
		if got, want := joinSegments(segs), trajectory.Render(r.Trajectory); got != want {
			t.Fatalf("line %d: segments %q, render %q", r.Line, got, want)
		}
		for _, sg := range segs {
			if sg.Scored && strings.Contains(sg.Text, "let me do a reflection") {
				t.Fatalf("line %d: harness reflection scored: %q", r.Line, sg.Text)
			}
			if !sg.Scored && strings.Contains(sg.Text, "let me do a reflection") {
				reflections++
			}
			if sg.Scored && strings.Contains(sg.Text, "reward =") {
				t.Fatalf("line %d: observation scored: %q", r.Line, sg.Text)
			}
		}
	}
	if reflections == 0 {
		t.Fatal("no reflection found unscored in the multimethod set")
	}
}

func TestMaskAlpaca(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"modelgen", ""}, {"stories260K", stories260K},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = genModel(t, t.TempDir(), 1, "")
			}
			m := loadModel(t, path, llama.ModelOptions{})
			tr := sampleTrajectory()
			segs, err := Segments(tr, TemplateAlpaca, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			ex, err := Encode(m, segs, EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ex.PieceWise {
				t.Error("whole-text tokens did not align with the text")
			}
			got, eos := scoredText(m, ex)
			if got != wantAgent {
				t.Errorf("scored text\n%q\nwant\n%q", got, wantAgent)
			}
			if !eos {
				t.Error("EOS not appended and scored")
			}
			if ex.Target[0] {
				t.Error("BOS scored")
			}
			// The tokens are exactly the whole text's (what inference sees) plus EOS.
			whole, _ := m.Tokenize(trajectory.AlpacaPrompt(tr.Question)+trajectory.Render(tr), llama.TokenizeOptions{AddSpecial: true})
			if len(whole)+1 != len(ex.Tokens) {
				t.Fatalf("%d tokens, whole text has %d (+EOS)", len(ex.Tokens), len(whole))
			}
			for i := range whole {
				if whole[i] != ex.Tokens[i] {
					t.Fatalf("token %d differs from the whole text's", i)
				}
			}
			// Train on inputs: everything after BOS.
			all, err := Encode(m, segs, EncodeOptions{TrainOnInputs: true})
			if err != nil {
				t.Fatal(err)
			}
			if all.Scored() != len(all.Tokens)-1 || all.Target[0] {
				t.Errorf("train on inputs scores %d of %d tokens", all.Scored(), len(all.Tokens))
			}
		})
	}
}

func TestMaskReflectionAndVerbatim(t *testing.T) {
	m := loadModel(t, genModel(t, t.TempDir(), 1, ""), llama.ModelOptions{})
	// A reflection injected by the harness, and an irregular (verbatim) step with
	// a lower-case label and a continuation line in the observation.
	tr := trajectory.Parse("Thought: Now I must reflect. Thought: I will search the city.\nAction: search[the city]\nObservation: The city\nis Paris.\nthought: the answer is Paris\nAction: finish[Paris]\nObservation: Episode finished, reward = True\n")
	tr.Question = "Which city?"
	if tr.Steps[0].Reflection == "" || tr.Steps[1].Verbatim == "" {
		t.Fatalf("test trajectory lacks a reflection or a verbatim step: %+v", tr.Steps)
	}
	segs, err := Segments(tr, TemplateAlpaca, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Encode(m, segs, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := scoredText(m, ex)
	want := " I will search the city.\nAction: search[the city]\nObservation:" +
		"thought: the answer is Paris\nAction: finish[Paris]\nObservation:"
	if got != want {
		t.Fatalf("scored text\n%q\nwant\n%q", got, want)
	}
}

func TestMaskChat(t *testing.T) {
	m := loadModel(t, genModel(t, t.TempDir(), 1, ""), llama.ModelOptions{})
	tr := sampleTrajectory()
	segs, err := Segments(tr, TemplateChat, m, "chatml")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Encode(m, segs, EncodeOptions{NoEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := scoredText(m, ex)
	// Each assistant message and its end of turn; the question and observations
	// (user messages) and the role headers are not scored.
	want := "Thought: I need to search the city.\nAction: search[the city]<|im_end|>" +
		"Thought: So the answer is Paris.\nAction: finish[Paris]<|im_end|>"
	if got != want {
		t.Fatalf("scored text\n%q\nwant\n%q", got, want)
	}
	text := joinSegments(segs)
	if !strings.Contains(text, "<|im_start|>user\nWhat is the capital") || !strings.Contains(text, "Observation: The city is Paris.") {
		t.Fatalf("chat text lacks the question or an observation:\n%s", text)
	}
}

func TestEncodeCutoff(t *testing.T) {
	m := loadModel(t, genModel(t, t.TempDir(), 1, ""), llama.ModelOptions{})
	segs, _ := Segments(sampleTrajectory(), TemplateAlpaca, nil, "")
	full, _ := Encode(m, segs, EncodeOptions{})
	cut, _ := Encode(m, segs, EncodeOptions{Cutoff: 20})
	if !cut.Truncated || len(cut.Tokens) != 20 || full.Truncated {
		t.Fatalf("cutoff 20: %d tokens, truncated %v (full %d, truncated %v)", len(cut.Tokens), cut.Truncated, len(full.Tokens), full.Truncated)
	}
	same, _ := Encode(m, segs, EncodeOptions{Cutoff: len(full.Tokens)})
	if same.Truncated {
		t.Fatal("an example of exactly the cutoff length counted as truncated")
	}
}
