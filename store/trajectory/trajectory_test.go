package trajectory

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const dataDir = "../../../shared/data/fireact/finetune"

func TestParseCases(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   Trajectory
		exotic bool // some step keeps Verbatim
	}{
		{
			name: "react",
			in:   "Thought: I need X.\nAction: search[X]\nObservation: X is Y.\nThought: So Y.\nAction: finish[Y]\nObservation: Episode finished, reward = True\n",
			want: Trajectory{Suffix: "\n", Answer: "Y", Reward: 1, Steps: []Step{
				{Thought: "I need X.", Action: "search", Argument: "X", Observation: "X is Y."},
				{Thought: "So Y.", Action: "finish", Argument: "Y", Observation: "Episode finished, reward = True"},
			}},
		},
		{
			name: "numbered",
			in:   "Thought 1: a\nAction 1: Search[b]\nObservation 1: c\nThought 2: d\nAction 2: Finish[e]",
			want: Trajectory{Numbered: true, Answer: "e", Steps: []Step{
				{Thought: "a", Action: "Search", Argument: "b", Observation: "c"},
				{Thought: "d", Action: "Finish", Argument: "e"},
			}},
		},
		{
			name: "missing thought label",
			in:   "I should look it up.\nAction: search[x]\nObservation: y",
			want: Trajectory{Steps: []Step{
				{Thought: "I should look it up.", Action: "search", Argument: "x", Observation: "y",
					Verbatim: "I should look it up.\nAction: search[x]\nObservation: y"},
			}},
			exotic: true,
		},
		{
			name: "bad brackets",
			in:   "Thought: t\nAction: search[foo\nObservation: o\nThought: u\nAction: finish\nObservation: Episode finished, reward = 0.",
			want: Trajectory{Reward: 0, Answer: "", Steps: []Step{
				{Thought: "t", Action: "search", Argument: "foo", Observation: "o", Verbatim: "Thought: t\nAction: search[foo\nObservation: o"},
				{Thought: "u", Action: "finish", Observation: "Episode finished, reward = 0.", Verbatim: "Thought: u\nAction: finish\nObservation: Episode finished, reward = 0."},
			}},
			exotic: true,
		},
		{
			name: "cot without action",
			in:   "Thought: Let's think step by step. The answer is 4.",
			want: Trajectory{Steps: []Step{{Thought: "Let's think step by step. The answer is 4."}}},
		},
		{
			name: "reflexion",
			in:   "Thought: Now that I haven't solved the task within 5 steps, let me do a reflection and think about how to improve my strategy. Thought: Try Z.\nAction: finish[Z]\nObservation: Episode finished, reward = 1",
			want: Trajectory{Answer: "Z", Reward: 1, Steps: []Step{{
				Reflection: "Now that I haven't solved the task within 5 steps, let me do a reflection and think about how to improve my strategy.",
				Thought:    "Try Z.", Action: "finish", Argument: "Z", Observation: "Episode finished, reward = 1"}}},
		},
		{
			name: "mmlu options before first thought",
			in:   "A. x\nB. y\nC. z\nD. w\nThought: B.\nAction: finish[B]\nObservation: Episode finished, reward = 1\n",
			want: Trajectory{Prefix: "A. x\nB. y\nC. z\nD. w\n", Suffix: "\n", Answer: "B", Reward: 1, Steps: []Step{
				{Thought: "B.", Action: "finish", Argument: "B", Observation: "Episode finished, reward = 1"}}},
		},
		{
			name: "multi-line observation and duplicate final observation",
			in:   "Thought: t\nAction: search[q]\nObservation: line1\nline2\nThought: u\nAction: finish[a]\nObservation: Episode finished, reward = 1.\nObservation: Episode finished, reward = 0\n",
			want: Trajectory{Suffix: "\n", Answer: "a", Reward: 0, Steps: []Step{
				{Thought: "t", Action: "search", Argument: "q", Observation: "line1\nline2"},
				{Thought: "u", Action: "finish", Argument: "a", Observation: "Episode finished, reward = 1."},
				{Observation: "Episode finished, reward = 0"},
			}},
		},
		{
			name: "bare answer",
			in:   "Paris",
			want: Trajectory{Prefix: "Paris"},
		},
		{
			name: "empty",
			in:   "",
			want: Trajectory{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
			if r := Render(got); r != tc.in {
				t.Errorf("Render(Parse(s)) = %q, want %q", r, tc.in)
			}
		})
	}
}

func TestParseReward(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"Episode finished, reward = True", 1, true},
		{"Episode finished, reward = False", 0, true},
		{"Episode finished, reward = 1", 1, true},
		{"Episode finished, reward = 0.", 0, true},
		{"Episode finished, reward = 0.5", 0.5, true},
		{"Badr Hari is a kickboxer", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseReward(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseReward(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestRoundTripReleasedData parses every trajectory in FireAct's released
// fine-tuning files and checks the text renders back byte for byte.
func TestRoundTripReleasedData(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(dataDir, "alpaca_format", "*.json"))
	if len(files) != 4 {
		t.Fatalf("found %d alpaca files under %s, want 4", len(files), dataDir)
	}
	verbatim, total := 0, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rows []struct{ Output string }
		if err := json.Unmarshal(b, &rows); err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			total++
			tr := Parse(r.Output)
			if got := Render(tr); got != r.Output {
				t.Fatalf("%s[%d]: round trip differs:\n got %q\nwant %q", f, i, got, r.Output)
			}
			if len(tr.Steps) == 0 {
				t.Errorf("%s[%d]: no steps", f, i)
			}
			for _, s := range tr.Steps {
				if s.Verbatim != "" {
					verbatim++
				}
			}
		}
	}
	gfiles, _ := filepath.Glob(filepath.Join(dataDir, "gpt_format", "*.jsonl"))
	for _, f := range gfiles {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var row struct {
				Messages []struct{ Role, Content string }
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, m := range row.Messages[1:] {
				parts = append(parts, m.Content)
			}
			text := strings.Join(parts, "\n")
			total++
			if got := Render(Parse(text)); got != text {
				t.Fatalf("%s: round trip differs:\n got %q\nwant %q", f, got, text)
			}
		}
		fh.Close()
	}
	t.Logf("%d trajectories, %d steps kept verbatim", total, verbatim)
}
