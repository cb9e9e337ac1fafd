package store

import (
	"context"
	"testing"
)

// TestCorpusVersion: a missing corpus has no documents; indexing sets a
// fingerprint that depends on the content only (the same documents in another
// file give the same one), re-indexing changes it, and a corpus indexed before
// fingerprints existed gets the same fingerprint computed from its documents.
func TestCorpusVersion(t *testing.T) {
	ctx := context.Background()
	a, b := openTemp(t), openTemp(t)
	if v, err := a.CorpusVersion(ctx, "wiki"); err != nil || v.Docs != 0 || v.Fingerprint != "" {
		t.Fatalf("missing corpus: %+v, %v", v, err)
	}
	docs := func() []CorpusDoc {
		return []CorpusDoc{{Corpus: "wiki", Title: "Paris", Text: "Paris is the capital of France."},
			{Corpus: "wiki", Title: "Lyon", Text: "Lyon is a city in France."}, {Corpus: "other", Title: "X", Text: "x"}}
	}
	if err := a.AddCorpusDocs(ctx, docs()); err != nil {
		t.Fatal(err)
	}
	// b gets the same documents in two batches: the fingerprint chains per
	// document, so batching does not matter.
	if err := b.AddCorpusDocs(ctx, docs()[:1]); err != nil {
		t.Fatal(err)
	}
	if err := b.AddCorpusDocs(ctx, docs()[1:]); err != nil {
		t.Fatal(err)
	}
	va, err := a.CorpusVersion(ctx, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.CorpusVersion(ctx, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	if va.Docs != 2 || len(va.Fingerprint) != 64 || va != vb {
		t.Fatalf("versions %+v and %+v, want 2 docs and equal fingerprints", va, vb)
	}
	if vo, _ := a.CorpusVersion(ctx, "other"); vo.Docs != 1 || vo.Fingerprint == va.Fingerprint {
		t.Fatalf("other corpus %+v", vo)
	}
	// A pre-fingerprint corpus, as migration 0002 leaves it: computed on use.
	if _, err := a.db.ExecContext(ctx, `UPDATE corpus_versions SET fingerprint = '' WHERE collection = 'wiki'`); err != nil {
		t.Fatal(err)
	}
	if v, err := a.CorpusVersion(ctx, "wiki"); err != nil || v != va {
		t.Fatalf("backfilled version %+v, %v; want %+v", v, err, va)
	}
	if err := a.AddCorpusDocs(ctx, []CorpusDoc{{Corpus: "wiki", Title: "Nice", Text: "Nice is on the coast."}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.CorpusVersion(ctx, "wiki"); v.Docs != 3 || v.Fingerprint == va.Fingerprint {
		t.Fatalf("after re-indexing %+v (was %+v)", v, va)
	}
}
