package llama

import "testing"

// slotState describes one slot for admission tests: its cached tokens, and for a
// busy slot the prompt tokens it still has to decode.
type slotState struct {
	kv      []Token
	busy    bool
	pending []Token
	key     string
	lastUse int64
}

func makeSlots(states []slotState) []*slot {
	slots := make([]*slot, len(states))
	for i, st := range states {
		s := &slot{id: i, kv: st.kv, adapterKey: st.key, lastUse: st.lastUse}
		if st.busy {
			s.req = &slotRequest{job: &job{}, pending: st.pending}
		}
		slots[i] = s
	}
	return slots
}

func toks(ids ...int) []Token {
	t := make([]Token, len(ids))
	for i, id := range ids {
		t[i] = Token(id)
	}
	return t
}

// seq is n tokens counting up from start: a long shared few-shot prefix.
func seq(start, n int) []Token {
	t := make([]Token, n)
	for i := range t {
		t[i] = Token(start + i)
	}
	return t
}

func cat(parts ...[]Token) []Token {
	var t []Token
	for _, p := range parts {
		t = append(t, p...)
	}
	return t
}

func TestChooseAdmission(t *testing.T) {
	fewShot := seq(100, 40)            // a shared prompt prefix
	prompt := cat(fewShot, toks(7, 8)) // a question after it
	const none = -1
	cases := []struct {
		name      string
		slots     []slotState
		prompt    []Token
		key       string
		minShared int
		noReuse   bool
		wait      bool
		target    int
		src       int
		reuse     int
	}{
		{name: "fresh engine: lowest id", slots: []slotState{{}, {}, {}},
			prompt: prompt, target: 0, src: none},
		{name: "idle cache with the prefix is reused in place",
			slots:  []slotState{{}, {kv: cat(fewShot, toks(9)), lastUse: 3}, {}},
			prompt: prompt, target: 1, src: 1, reuse: 40},
		{name: "whole prompt cached: the last token is decoded again",
			slots:  []slotState{{kv: prompt}},
			prompt: prompt, target: 0, src: 0, reuse: len(prompt) - 1},
		{name: "busy source: its cells are copied to the least useful idle slot",
			slots:  []slotState{{kv: toks(1, 2, 3), lastUse: 1}, {kv: fewShot, busy: true}, {kv: toks(4), lastUse: 2}, {kv: toks(5), lastUse: 1}},
			prompt: prompt, target: 3, src: 1, reuse: 40},
		{name: "idle source preferred over a busy one holding as much",
			slots:  []slotState{{kv: fewShot, busy: true}, {kv: fewShot}},
			prompt: prompt, target: 1, src: 1, reuse: 40},
		{name: "another adapter set's cells are not reused",
			slots:  []slotState{{kv: fewShot, key: "0xc000@1"}, {}},
			prompt: prompt, target: 1, src: none},
		{name: "same adapter set's cells are reused",
			slots:  []slotState{{kv: fewShot, key: "0xc000@1"}, {}},
			prompt: prompt, key: "0xc000@1", target: 0, src: 0, reuse: 40},
		{name: "prefix still being decoded: wait for it",
			slots:  []slotState{{kv: fewShot[:4], busy: true, pending: cat(fewShot[4:], toks(5))}, {}},
			prompt: prompt, minShared: 16, wait: true},
		{name: "prefix being decoded shares too little more: no wait",
			slots:  []slotState{{kv: fewShot[:30], busy: true, pending: fewShot[30:]}, {}},
			prompt: prompt, minShared: 16, target: 1, src: 0, reuse: 30},
		{name: "no reuse: cached cells ignored, emptiest slot taken",
			slots:  []slotState{{kv: fewShot}, {kv: toks(1)}},
			prompt: prompt, noReuse: true, target: 1, src: none},
		{name: "ties: least recently used, then lowest id",
			slots:  []slotState{{kv: toks(1), lastUse: 5}, {kv: toks(2), lastUse: 4}, {kv: toks(3), lastUse: 4}},
			prompt: prompt, target: 1, src: none},
		{name: "every slot busy: no target",
			slots:  []slotState{{kv: fewShot, busy: true}, {busy: true}},
			prompt: prompt, target: none, src: none},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			slots := makeSlots(tc.slots)
			minShared := tc.minShared
			if minShared == 0 {
				minShared = 16
			}
			a := chooseAdmission(slots, tc.prompt, tc.key, minShared, tc.noReuse)
			id := func(s *slot) int {
				if s == nil {
					return none
				}
				return s.id
			}
			if tc.wait {
				if !a.wait {
					t.Fatalf("admission %+v, want wait", a)
				}
				return
			}
			if a.wait || id(a.target) != tc.target || a.reuse != tc.reuse || (a.target != nil && id(a.src) != tc.src) {
				t.Fatalf("wait %v target %d src %d reuse %d; want target %d src %d reuse %d",
					a.wait, id(a.target), id(a.src), a.reuse, tc.target, tc.src, tc.reuse)
			}
		})
	}
}
