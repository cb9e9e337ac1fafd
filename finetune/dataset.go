package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/fireact/fireact/store"
)

// Selection chooses the episodes of a training set from the store.
type Selection struct {
	// Runs are runs (names or ids) whose episodes are candidates.
	Runs []string
	// Dataset is a store dataset (name or id) whose episodes are candidates, for
	// example one imported from FireAct's files.
	Dataset string
	// MinReward keeps only episodes with at least this reward (FireAct trains on
	// successful trajectories: 1); nil keeps every finished episode. Episodes that
	// failed with an error are never used.
	MinReward *float64
	// Methods and Tasks are mixing ratios per method ("react", "cot", ...) and per
	// task ("hotpotqa", ...): a group of n episodes contributes
	// round(n·methodRatio·taskRatio) of them, sampled without replacement below 1
	// and repeated whole (plus a sampled remainder) above 1. A method or task not
	// named in a non-empty map is left out; an empty map keeps all at ratio 1.
	Methods map[string]float64
	Tasks   map[string]float64
	// Seed makes the sampling deterministic.
	Seed uint64
	// Name is the name of the recorded dataset; default "finetune", with "#2",
	// "#3", ... appended when taken.
	Name string
}

// ParseMix parses mixing ratios "react=1,cot=0.5,reflexion=0.5".
func ParseMix(s string) (map[string]float64, error) {
	out := map[string]float64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf("finetune: mix %q: want name=ratio", part)
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			return nil, fmt.Errorf("finetune: mix %q: ratio must be a number >= 0", part)
		}
		out[k] = r
	}
	return out, nil
}

// candidate is an episode that may enter the dataset.
type candidate struct {
	id     int64
	method string
	task   string
}

// GroupCount is the number of episodes of one method and task available and
// chosen.
type GroupCount struct {
	Method    string `json:"method"`
	Task      string `json:"task"`
	Available int    `json:"available"`
	Chosen    int    `json:"chosen"`
}

// Recipe is the JSON recorded with a dataset built by BuildDataset: everything
// needed to rebuild it.
type Recipe struct {
	Runs      []int64            `json:"runs,omitempty"`
	Dataset   int64              `json:"dataset,omitempty"`
	MinReward *float64           `json:"min_reward,omitempty"`
	Methods   map[string]float64 `json:"mix,omitempty"`
	Tasks     map[string]float64 `json:"task_mix,omitempty"`
	Seed      uint64             `json:"seed"`
	Groups    []GroupCount       `json:"groups"`
	Size      int                `json:"size"`
}

// BuildDataset selects episodes as sel says, records them as a store dataset with
// the recipe and returns it with the episode ids in dataset order (candidates'
// order, repeats adjacent).
func BuildDataset(ctx context.Context, s *store.Store, sel Selection) (store.Dataset, []int64, Recipe, error) {
	rec := Recipe{MinReward: sel.MinReward, Methods: sel.Methods, Tasks: sel.Tasks, Seed: sel.Seed}
	cands, err := candidates(ctx, s, sel, &rec)
	if err != nil {
		return store.Dataset{}, nil, rec, err
	}
	ids := mix(cands, sel, &rec)
	if len(ids) == 0 {
		return store.Dataset{}, nil, rec, fmt.Errorf("finetune: the selection chose no episodes (%d candidates; check --min-reward and --mix)", len(cands))
	}
	rec.Size = len(ids)
	recipe, err := json.Marshal(rec)
	if err != nil {
		return store.Dataset{}, nil, rec, fmt.Errorf("finetune: dataset recipe: %w", err)
	}
	name := sel.Name
	if name == "" {
		name = "finetune"
	}
	if name, err = s.FreeDatasetName(ctx, name); err != nil {
		return store.Dataset{}, nil, rec, fmt.Errorf("finetune: %w", err)
	}
	d := store.Dataset{Name: name, Recipe: string(recipe)}
	if _, err := s.CreateDataset(ctx, &d, ids); err != nil {
		return store.Dataset{}, nil, rec, fmt.Errorf("finetune: record dataset: %w", err)
	}
	d.Size = len(ids)
	return d, ids, rec, nil
}

// candidates lists the usable episodes of the selection's runs and dataset, in
// run order then dataset order, each episode once.
func candidates(ctx context.Context, s *store.Store, sel Selection, rec *Recipe) ([]candidate, error) {
	if len(sel.Runs) == 0 && sel.Dataset == "" {
		return nil, errors.New("finetune: select episodes by run or dataset")
	}
	tasks := map[int64]string{} // question id → task
	taskOf := func(qid int64) (string, error) {
		if t, ok := tasks[qid]; ok {
			return t, nil
		}
		q, err := s.Question(ctx, qid)
		if err != nil {
			return "", err
		}
		tasks[qid] = q.Task
		return q.Task, nil
	}
	seen := map[int64]bool{}
	var out []candidate
	add := func(ep store.Episode) error {
		if seen[ep.ID] || ep.Status == store.EpisodeError {
			return nil
		}
		if sel.MinReward != nil && ep.Reward < *sel.MinReward {
			return nil
		}
		task, err := taskOf(ep.QuestionID)
		if err != nil {
			return fmt.Errorf("finetune: episode %d: question %d: %w", ep.ID, ep.QuestionID, err)
		}
		seen[ep.ID] = true
		out = append(out, candidate{id: ep.ID, method: strings.ToLower(ep.Method), task: strings.ToLower(task)})
		return nil
	}
	for _, r := range sel.Runs {
		run, err := lookupRun(ctx, s, r)
		if err != nil {
			return nil, err
		}
		rec.Runs = append(rec.Runs, run.ID)
		eps, err := s.Episodes(ctx, run.ID)
		if err != nil {
			return nil, fmt.Errorf("finetune: run %d: %w", run.ID, err)
		}
		for _, ep := range eps {
			if err := add(ep); err != nil {
				return nil, err
			}
		}
	}
	if sel.Dataset != "" {
		d, err := LookupDataset(ctx, s, sel.Dataset)
		if err != nil {
			return nil, err
		}
		rec.Dataset = d.ID
		ids, err := s.DatasetEpisodeIDs(ctx, d.ID)
		if err != nil {
			return nil, fmt.Errorf("finetune: dataset %d: %w", d.ID, err)
		}
		for _, id := range ids {
			ep, err := s.Episode(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("finetune: dataset %d: episode %d: %w", d.ID, id, err)
			}
			if err := add(ep); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// mix applies the mixing ratios group by group. Each group draws from its own
// generator, seeded from the seed and the group's name, so that changing one
// group's ratio does not reshuffle the others.
func mix(cands []candidate, sel Selection, rec *Recipe) []int64 {
	type key struct{ method, task string }
	groups := map[key][]int{} // candidate indices
	var keys []key
	for i, c := range cands {
		k := key{c.method, c.task}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].method != keys[j].method {
			return keys[i].method < keys[j].method
		}
		return keys[i].task < keys[j].task
	})
	mult := make([]int, len(cands))
	for _, k := range keys {
		idx := groups[k]
		r := ratio(sel.Methods, k.method) * ratio(sel.Tasks, k.task)
		want := int(math.Round(r * float64(len(idx))))
		whole, rest := want/len(idx), want%len(idx)
		for _, i := range idx {
			mult[i] += whole
		}
		if rest > 0 {
			h := fnv.New64a()
			h.Write([]byte(k.method + "\x00" + k.task))
			rng := rand.New(rand.NewPCG(sel.Seed, h.Sum64()))
			perm := rng.Perm(len(idx))
			for _, p := range perm[:rest] {
				mult[idx[p]]++
			}
		}
		rec.Groups = append(rec.Groups, GroupCount{Method: k.method, Task: k.task, Available: len(idx), Chosen: want})
	}
	var ids []int64
	for i, c := range cands {
		for j := 0; j < mult[i]; j++ {
			ids = append(ids, c.id)
		}
	}
	return ids
}

func ratio(m map[string]float64, name string) float64 {
	if len(m) == 0 {
		return 1
	}
	return m[name]
}

// lookupRun finds a run by name, or by id when the text is a number and no run
// has that name.
func lookupRun(ctx context.Context, s *store.Store, ref string) (store.Run, error) {
	r, err := s.RunByName(ctx, ref)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Run{}, fmt.Errorf("finetune: run %q: %w", ref, err)
	}
	id, perr := strconv.ParseInt(ref, 10, 64)
	if perr != nil {
		return store.Run{}, fmt.Errorf("finetune: run %q: %w", ref, err)
	}
	if r, err = s.Run(ctx, id); err != nil {
		return store.Run{}, fmt.Errorf("finetune: run %q: %w", ref, err)
	}
	return r, nil
}

// LookupDataset finds a dataset by name, or by id when the text is a number and
// no dataset has that name.
func LookupDataset(ctx context.Context, s *store.Store, ref string) (store.Dataset, error) {
	d, err := s.DatasetByName(ctx, ref)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Dataset{}, fmt.Errorf("finetune: dataset %q: %w", ref, err)
	}
	id, perr := strconv.ParseInt(ref, 10, 64)
	if perr != nil {
		return store.Dataset{}, fmt.Errorf("finetune: dataset %q: %w", ref, err)
	}
	if d, err = s.Dataset(ctx, id); err != nil {
		return store.Dataset{}, fmt.Errorf("finetune: dataset %q: %w", ref, err)
	}
	return d, nil
}
