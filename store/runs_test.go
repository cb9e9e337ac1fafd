package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRunsCreateGetList(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a := Run{Name: "a", Kind: KindGenerate, Model: "gpt-4", Method: "react", Task: "hotpotqa", Split: "train",
		Noise: 0.5, Seed: 7, Config: `{"temperature":0}`}
	if _, err := s.CreateRun(ctx, &a); err != nil {
		t.Fatal(err)
	}
	b := Run{Kind: KindEval, Task: "hotpotqa", Split: "dev"}
	if _, err := s.CreateRun(ctx, &b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Run(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "a" || got.Model != "gpt-4" || got.Noise != 0.5 || got.Seed != 7 || got.Status != StatusRunning ||
		got.Config != `{"temperature":0}` || !got.FinishedAt.IsZero() {
		t.Errorf("Run = %+v", got)
	}
	if err := s.SetRunStatus(ctx, a.ID, StatusDone); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Run(ctx, a.ID); got.Status != StatusDone || got.FinishedAt.IsZero() {
		t.Errorf("after SetRunStatus: %+v", got)
	}
	all, err := s.ListRuns(ctx, "")
	if err != nil || len(all) != 2 || all[0].ID != b.ID {
		t.Errorf("ListRuns = %+v, %v", all, err)
	}
	evals, _ := s.ListRuns(ctx, KindEval)
	if len(evals) != 1 || evals[0].ID != b.ID {
		t.Errorf("ListRuns(eval) = %+v", evals)
	}
	if _, err := s.CreateRun(ctx, &Run{Name: "a", Kind: KindEval}); err == nil {
		t.Error("duplicate run name accepted")
	}
	if _, err := s.CreateRun(ctx, &Run{Kind: "bogus"}); err == nil {
		t.Error("bogus kind accepted")
	}
}

func TestRunConfigSecretsRedacted(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	// The fake OpenAI-style key is assembled at run time so that secret scanners
	// reading the source do not mistake it for a real one.
	fakeKey := "sk-" + strings.Repeat("abcdefgh", 3)
	cfg := `{"model":"gpt-4","api_key":"abc123","max_tokens":256,"tokenizer":"spm",
		"openai":{"apiKey":"xyz","base_url":"http://x"},"headers":{"Authorization":"Bearer qqq"},
		"tools":[{"name":"serpapi","key":"s3cr3t","extra":"` + fakeKey + `"}],
		"hf_token":"hf_123","password":"p","note":"bearer of news"}`
	r := Run{Kind: KindGenerate, Config: cfg}
	if _, err := s.CreateRun(ctx, &r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"abc123", "xyz", "qqq", "s3cr3t", "sk-abc", "hf_123", `"p"`} {
		if strings.Contains(got.Config, secret) {
			t.Errorf("stored config still holds %q: %s", secret, got.Config)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got.Config), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"model": "gpt-4", "api_key": Redacted, "max_tokens": 256.0, "tokenizer": "spm",
		"openai":   map[string]any{"apiKey": Redacted, "base_url": "http://x"},
		"headers":  map[string]any{"Authorization": Redacted},
		"tools":    []any{map[string]any{"name": "serpapi", "key": Redacted, "extra": Redacted}},
		"hf_token": Redacted, "password": Redacted, "note": "bearer of news",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("redacted config\n got %v\nwant %v", m, want)
	}
	// The file itself must not hold the secret anywhere (WAL included).
	s.Close()
	for _, f := range []string{s.Path(), s.Path() + "-wal"} {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "abc123") || strings.Contains(string(b), "s3cr3t") {
			t.Errorf("%s contains a secret", filepath.Base(f))
		}
	}
	if _, err := RedactConfig("{not json"); err == nil {
		t.Error("RedactConfig accepted invalid JSON")
	}
}

func TestFileHash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	os.WriteFile(p, []byte("abc"), 0o644)
	h, err := FileHash(p)
	if err != nil || h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("FileHash = %q, %v", h, err)
	}
}
