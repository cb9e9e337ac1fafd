-- 0008: the policy-gradient figures of each step of a GRPO training run
-- (`fireact improve --learner grpo`, `fireact rl`), beside its loss_points:
-- the rewards the step learned from, how far the policy has moved from the
-- reference and how much of the batch PPO's clipping stopped. They are the
-- figures of the batch at the policy the step starts from (the surrogate's
-- ratios are 1 at the first step of an on-policy round).
CREATE TABLE policy_steps (
    training_run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    step            INTEGER NOT NULL CHECK (step >= 1),
    rollouts        INTEGER NOT NULL,          -- rollouts in the step's batch
    tokens          INTEGER NOT NULL,          -- scored tokens (the model's own)
    reward          REAL NOT NULL,             -- mean reward of the batch's rollouts
    surrogate       REAL NOT NULL,             -- mean clipped surrogate min(ρA, clip(ρ)A) per token
    kl              REAL,                      -- mean k3 KL to the reference per token; NULL without a reference
    clipped         REAL NOT NULL CHECK (clipped >= 0 AND clipped <= 1), -- fraction of tokens clipped
    objective       REAL NOT NULL,             -- surrogate − β·KL (the step's loss is its negative)
    PRIMARY KEY (training_run_id, step)
) WITHOUT ROWID;
