-- 0001: the initial fireact schema. Times are stored as TIMESTAMP text by
-- go-sqlite3; durations as REAL seconds; JSON as TEXT.

-- runs: one generate/eval/train/import run with its full configuration.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    name         TEXT UNIQUE,               -- optional human id ("hotpotqa-react-llama3b")
    kind         TEXT NOT NULL CHECK (kind IN ('generate', 'eval', 'train', 'import')),
    config       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),  -- secrets redacted
    model        TEXT NOT NULL DEFAULT '',  -- model path or name
    model_hash   TEXT NOT NULL DEFAULT '',  -- sha256 of the model file
    adapter      TEXT NOT NULL DEFAULT '',
    adapter_hash TEXT NOT NULL DEFAULT '',
    method       TEXT NOT NULL DEFAULT '',
    task         TEXT NOT NULL DEFAULT '',
    split        TEXT NOT NULL DEFAULT '',
    noise        REAL NOT NULL DEFAULT 0,
    seed         INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    created_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP
);

-- questions: the questions of a task split, shared by all runs over that split.
CREATE TABLE questions (
    id       INTEGER PRIMARY KEY,
    task     TEXT NOT NULL,
    split    TEXT NOT NULL,
    idx      INTEGER NOT NULL,              -- index in the split's file
    qid      TEXT NOT NULL DEFAULT '',      -- the dataset's own id, if any
    text     TEXT NOT NULL,
    gold     TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    UNIQUE (task, split, idx)
);

-- episodes: one run's attempt at one question; at most one per (run, question).
CREATE TABLE episodes (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    question_id      INTEGER NOT NULL REFERENCES questions(id),
    status           TEXT NOT NULL CHECK (status IN ('done', 'unfinished', 'error')),
    method           TEXT NOT NULL DEFAULT '',
    prediction       TEXT NOT NULL DEFAULT '',
    em               REAL NOT NULL DEFAULT 0,
    f1               REAL NOT NULL DEFAULT 0,
    reward           REAL NOT NULL DEFAULT 0,
    turns            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens    INTEGER NOT NULL DEFAULT 0,
    generated_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s        REAL NOT NULL DEFAULT 0,
    cost             REAL NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT '',
    text_prefix      TEXT NOT NULL DEFAULT '',  -- trajectory text before the first step
    text_suffix      TEXT NOT NULL DEFAULT '',  -- trajectory text after the last step
    numbered         INTEGER NOT NULL DEFAULT 0, -- "Thought 1:" labels
    layout           TEXT NOT NULL DEFAULT '',  -- chat message layout of an irregular imported row
    source           TEXT NOT NULL DEFAULT '',  -- file:line an imported episode came from
    created_at       TIMESTAMP NOT NULL,
    UNIQUE (run_id, question_id)
);
CREATE INDEX episodes_question ON episodes(question_id);

-- steps: the thought/action/observation turns of an episode.
CREATE TABLE steps (
    episode_id       INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
    n                INTEGER NOT NULL,          -- 0-based position
    reflection       TEXT NOT NULL DEFAULT '',
    thought          TEXT NOT NULL DEFAULT '',
    action           TEXT NOT NULL DEFAULT '',
    argument         TEXT NOT NULL DEFAULT '',
    observation      TEXT NOT NULL DEFAULT '',
    raw              TEXT NOT NULL DEFAULT '',  -- raw model text of the step
    verbatim         TEXT NOT NULL DEFAULT '',  -- exact source text of an irregular step
    prompt_tokens    INTEGER NOT NULL DEFAULT 0,
    generated_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s        REAL NOT NULL DEFAULT 0,
    noise            TEXT NOT NULL DEFAULT '',  -- noise applied to the observation, '' if none
    PRIMARY KEY (episode_id, n)
) WITHOUT ROWID;

-- tool_cache: tool results by backend and normalised query.
CREATE TABLE tool_cache (
    backend     TEXT NOT NULL,
    query       TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    hits        INTEGER NOT NULL DEFAULT 0,
    last_hit_at TIMESTAMP,
    PRIMARY KEY (backend, query)
);

-- cache_stats: lookups per backend, for the hit rate (misses leave no row in
-- tool_cache, so they are counted here).
CREATE TABLE cache_stats (
    backend TEXT PRIMARY KEY,
    hits    INTEGER NOT NULL DEFAULT 0,
    misses  INTEGER NOT NULL DEFAULT 0
);

-- corpus: documents for offline BM25 search; the collection column names the
-- corpus (e.g. "wiki-demo"). (FTS5 reserves a hidden column named after the
-- table, so it cannot be called "corpus".)
CREATE VIRTUAL TABLE corpus USING fts5(
    collection UNINDEXED,
    title,
    text,
    tokenize = 'porter unicode61'
);

-- datasets: training sets built from episodes, with the recipe that chose them.
CREATE TABLE datasets (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    recipe     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(recipe)),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE dataset_episodes (
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    episode_id INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
    PRIMARY KEY (dataset_id, position)
) WITHOUT ROWID;
CREATE INDEX dataset_episodes_episode ON dataset_episodes(episode_id);

-- training_runs: one fine-tuning job; its run row (kind 'train') holds model
-- identity and config.
CREATE TABLE training_runs (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,
    dataset_id     INTEGER REFERENCES datasets(id),
    hyperparams    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(hyperparams)),
    output_adapter TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    created_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP
);

-- loss_points: the loss curve of a training run.
CREATE TABLE loss_points (
    training_run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    step            INTEGER NOT NULL,
    loss            REAL NOT NULL,
    lr              REAL NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    elapsed_s       REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (training_run_id, step)
) WITHOUT ROWID;
