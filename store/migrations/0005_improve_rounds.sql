-- 0005: the rounds of `fireact improve` (rejection sampling, STaR / ReST-EM).
-- One row per job and round: what the student sampled, how many samples passed
-- the reward threshold and were kept, what was trained on, the adapter
-- written and the dev score. Round 0 is the starting student, evaluated only.
-- The sampled runs, the dataset, the training run and the dev run are
-- ordinary records; the row points at them and keeps the counts a report
-- plots without recomputing them.
CREATE TABLE improve_rounds (
    job             TEXT NOT NULL,                 -- the job's name (improve --run)
    round           INTEGER NOT NULL CHECK (round >= 0),
    status          TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    phase           TEXT NOT NULL DEFAULT '',      -- where a running round stands: sample, select, train, eval
    config          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    adapter_in      TEXT NOT NULL DEFAULT '',      -- adapter the round samples with and trains from ('' : none)
    adapter         TEXT NOT NULL DEFAULT '',      -- adapter the round wrote
    adapter_hash    TEXT NOT NULL DEFAULT '',      -- its sha256
    questions       INTEGER NOT NULL DEFAULT 0,    -- train questions sampled
    k               INTEGER NOT NULL DEFAULT 0,    -- samples per question
    samples         INTEGER NOT NULL DEFAULT 0,    -- sampled episodes recorded
    passed          INTEGER NOT NULL DEFAULT 0,    -- samples at or above the reward threshold
    kept            INTEGER NOT NULL DEFAULT 0,    -- distinct passed trajectories kept
    solved          INTEGER NOT NULL DEFAULT 0,    -- questions with at least one kept sample
    self_examples   INTEGER NOT NULL DEFAULT 0,    -- kept samples in the training mix (after --mix)
    teacher_examples INTEGER NOT NULL DEFAULT 0,   -- teacher examples in the training mix
    prompt_tokens   INTEGER NOT NULL DEFAULT 0,    -- prompt tokens the sampling submitted to the engine
    prompt_decoded  INTEGER NOT NULL DEFAULT 0,    -- of them decoded (the rest came from shared KV cells)
    dataset_id      INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
    training_run_id INTEGER REFERENCES training_runs(id) ON DELETE SET NULL,
    dev_run_id      INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    dev_em          REAL NOT NULL DEFAULT 0,
    dev_f1          REAL NOT NULL DEFAULT 0,
    train_loss      REAL NOT NULL DEFAULT 0,       -- last training loss of the round
    sample_s        REAL NOT NULL DEFAULT 0,       -- seconds spent sampling (this process's share on a resume)
    train_s         REAL NOT NULL DEFAULT 0,
    eval_s          REAL NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    PRIMARY KEY (job, round)
);
