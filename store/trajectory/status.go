package trajectory

// Status is how an episode (one attempt at one question) ended. It lives
// here, beside the trajectory, so the agent that produces episodes and the
// store that records them share one closed set without the agent needing the
// store for it.
type Status string

// Episode statuses. StatusError is not a finished episode: resuming its run
// retries it. StatusUnfinished means the agent ran out of steps (or of
// parseable output), which is a result, not a failure.
const (
	StatusDone       Status = "done"
	StatusUnfinished Status = "unfinished"
	StatusError      Status = "error"
)
