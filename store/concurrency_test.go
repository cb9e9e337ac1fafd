package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentWriters writes episodes from 8 goroutines at once, half of
// them through a second Store on the same file (as a second process would),
// and expects no "database is locked" error.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	s2, err := Open(ctx, s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	const writers, perWriter = 8, 60
	r, qs := seedRun(t, s, writers*perWriter)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		st := s
		if w%2 == 1 {
			st = s2
		}
		wg.Add(1)
		go func(w int, st *Store) {
			defer wg.Done()
			for i := w; i < len(qs); i += writers {
				ep := Episode{RunID: r.ID, QuestionID: qs[i].ID, Turns: 3}
				if err := st.InsertEpisode(ctx, &ep, testSteps(3)); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				// Readers run alongside the writers, as the CLI's summary would.
				if i%20 == 0 {
					if _, err := st.Summary(ctx, r.ID); err != nil {
						errs <- fmt.Errorf("reader %d: %w", w, err)
						return
					}
				}
			}
		}(w, st)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eps, err := s.Episodes(ctx, r.ID)
	if err != nil || len(eps) != writers*perWriter {
		t.Fatalf("%d episodes, want %d (%v)", len(eps), writers*perWriter, err)
	}
}
