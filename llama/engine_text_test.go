package llama

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTextStream feeds token pieces through a request's text and checks what is
// handed over after each piece, the stop string found and the final text. The
// stop strings are the ones ReAct prompts use.
func TestTextStream(t *testing.T) {
	cases := []struct {
		name   string
		stops  []string
		pieces []string
		ready  []string // handed over after each piece (none after the stop)
		stop   string
		rest   string // handed over at the end
		text   string
	}{
		{name: "no stop strings: everything at once",
			pieces: []string{" Thought", " 1:", " I"}, ready: []string{" Thought", " 1:", " I"},
			text: " Thought 1: I"},
		{name: "stop string across pieces is never handed over",
			stops:  []string{"\nObservation 1:"},
			pieces: []string{" Search[Milhouse]", "\nObs", "ervation", " 1:"},
			ready:  []string{" Search[Milhouse]", "", ""},
			stop:   "\nObservation 1:", text: " Search[Milhouse]"},
		{name: "held-back prefix released once it cannot match",
			stops:  []string{"\nObservation 1:"},
			pieces: []string{"a\nObs", "cure"}, ready: []string{"a", "\nObscure"},
			text: "a\nObscure"},
		{name: "held back at the end is handed over by rest",
			stops:  []string{"\nObservation 1:"},
			pieces: []string{"Finish[yes]", "\n"}, ready: []string{"Finish[yes]", ""},
			rest: "\n", text: "Finish[yes]\n"},
		{name: "earliest of several stop strings wins",
			stops:  []string{"\nAction", "\nObservation"},
			pieces: []string{"x\nObservation\nAction"}, ready: nil,
			stop: "\nObservation", rest: "x", text: "x"},
		{name: "stop string inside one piece cuts the text before it",
			stops:  []string{"\nQuestion:"},
			pieces: []string{"Answer: 42", "\nQuestion: next"}, ready: []string{"Answer: 42"},
			stop: "\nQuestion:", text: "Answer: 42"},
		{name: "half a UTF-8 character waits for its other half",
			pieces: []string{"caf\xc3", "\xa9 au lait"}, ready: []string{"caf", "\u00e9 au lait"},
			text: "caf\u00e9 au lait"},
		{name: "three-byte character split in three",
			pieces: []string{"\xe2", "\x80", "\x94!"}, ready: []string{"", "", "\u2014!"},
			text: "\u2014!"},
		{name: "a character cut by the end of generation becomes one U+FFFD per byte",
			pieces: []string{"ok \xe2\x80"}, ready: []string{"ok "},
			rest: "\xe2\x80", text: "ok \uFFFD\uFFFD"},
		{name: "empty stop string is ignored",
			stops: []string{""}, pieces: []string{"a", "b"}, ready: []string{"a", "b"}, text: "ab"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ts textStream
			ts.out = []byte("left over from the slot's last request")
			ts.reset(tc.stops)
			var got []string
			stop := ""
			for _, p := range tc.pieces {
				if stop = ts.add([]byte(p)); stop != "" {
					break
				}
				got = append(got, ts.ready())
			}
			if strings.Join(got, "|") != strings.Join(tc.ready, "|") || len(got) != len(tc.ready) {
				t.Fatalf("ready %q, want %q", got, tc.ready)
			}
			if stop != tc.stop {
				t.Fatalf("stop %q, want %q", stop, tc.stop)
			}
			if rest := ts.rest(); rest != tc.rest {
				t.Fatalf("rest %q, want %q", rest, tc.rest)
			}
			if text := ts.text(); text != tc.text {
				t.Fatalf("text %q, want %q", text, tc.text)
			}
			if again := ts.rest(); again != "" {
				t.Fatalf("rest handed over %q twice", again)
			}
		})
	}
}

// TestStreamedTextMatchesText: whatever bytes the pieces hold, the chunks
// handed over (ready, then rest), once JSON-encoded as a server streams them,
// decode to exactly text(): a streamed answer equals the non-streamed one.
func TestStreamedTextMatchesText(t *testing.T) {
	pieceSets := [][]string{
		{"\xe2\x82", " ta", " tim\xf0\x9f", "i Ob", "\x80\x80\x80"},
		{"\xff\xfe", "ok", "\xc3"},
		{"a", "\x80", "\xe2", "\x80", "\x94", "\xe2\x80"},
		{"caf\xc3", "\xa9"},
	}
	for _, pieces := range pieceSets {
		var ts textStream
		var streamed strings.Builder
		for _, p := range pieces {
			ts.add([]byte(p))
			streamed.WriteString(jsonRoundTrip(t, ts.ready()))
		}
		streamed.WriteString(jsonRoundTrip(t, ts.rest()))
		if got, want := streamed.String(), jsonRoundTrip(t, ts.text()); got != want {
			t.Errorf("pieces %q: streamed %q, text %q", pieces, got, want)
		}
	}
}

// jsonRoundTrip encodes s as a JSON string and decodes it again.
func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
