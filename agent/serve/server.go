// Package serve is fireact's HTTP server: an OpenAI-compatible API
// (/v1/models, /v1/completions, /v1/chat/completions, streamed or not) over one
// batched llama.Engine, with several LoRA adapters chosen per request by model
// name ("BASE+ADAPTER"), plus /v1/agent/run, which runs the whole agent loop
// server-side through a runner function the caller supplies.
//
// The server is meant to be reachable by tools on the same machine by default
// (fireact serve binds 127.0.0.1); when exposed, a bearer API key guards every
// endpoint but /health. Requests are bounded in body size, max_tokens and
// time; shutdown stops accepting connections and finishes the requests in
// flight before the engine is closed.
package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fireact/fireact/chattmpl/llamachat"
	"github.com/fireact/fireact/llama"
)

// Defaults of the Config limits.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxTokens       = 2048
	DefaultTimeout         = 10 * time.Minute
	DefaultShutdownTimeout = time.Minute
	// DefaultMaxQueue is how many generation requests may wait for a slot
	// beyond the engine's parallel slots.
	DefaultMaxQueue = 64
	// DefaultHeaderTimeout bounds reading a request's headers, DefaultBodyTimeout
	// its body, and DefaultWriteStall one streamed chunk's write to a client
	// that stopped reading (slow-loris in both directions).
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 30 * time.Second
	DefaultWriteStall    = 30 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 2 * time.Minute
)

// Config configures a Server. Engine and BaseName are required.
type Config struct {
	// Engine generates every request; the server does not close it.
	Engine *llama.Engine
	// BaseName is the name the base model is served under.
	BaseName string
	// Adapters are served as BaseName+"+"+Name.
	Adapters []NamedAdapter
	// ChatTemplate overrides the model's chat template: a llama.cpp built-in name
	// (e.g. "chatml") or a template text. Without either, chat requests fail with a
	// message saying so.
	ChatTemplate string
	// APIKey, when set, must be sent as "Authorization: Bearer KEY" on every
	// endpoint but /health.
	APIKey string
	// MaxBodyBytes bounds request bodies (0: DefaultMaxBodyBytes); larger ones get 413.
	MaxBodyBytes int64
	// MaxTokens caps max_tokens (0: DefaultMaxTokens); it is also the default when a
	// request gives none. A larger request is refused, not silently cut.
	MaxTokens int
	// Temperature is used when a request gives none (0: greedy). go-openai omits
	// a zero temperature, so defaulting to OpenAI's 1 would turn its greedy
	// requests into sampled ones.
	Temperature float32
	// Timeout bounds each request (0: DefaultTimeout; negative: none). On expiry the
	// request's context is cancelled, which frees its engine slot.
	Timeout time.Duration
	// ShutdownTimeout is how long Serve waits for requests in flight after its
	// context is cancelled before cancelling them (0: DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// MaxQueue is how many generation requests (completions, chat, agent runs)
	// may wait for a slot beyond the engine's NSeqMax running ones; one more is
	// answered 503 with Retry-After at once instead of piling up unbounded
	// memory and latency (0: DefaultMaxQueue; negative: no limit). A request
	// counts once however many choices (n, prompts) it has.
	MaxQueue int
	// HeaderTimeout, BodyTimeout and WriteStall bound a slow client's header
	// read, body read and one streamed chunk's write (0: their defaults;
	// negative: none). A stalled stream ends its request and frees its slot.
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	WriteStall    time.Duration
	// AgentRunner serves /v1/agent/run; nil answers 501.
	AgentRunner AgentRunner
	// Logger receives one line per request (never headers or bodies); nil discards.
	Logger *slog.Logger
}

// Server serves the API. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg     Config
	reg     *registry
	tmpl    string // chat template override ("" means the model's)
	hasTmpl bool
	// chat renders chat requests; nil with chatErr when the model's own
	// template cannot be compiled (chat requests then fail saying why).
	chat    *llamachat.Renderer
	chatErr error
	log     *slog.Logger
	met     *metrics
	started time.Time
	handler http.Handler
	// admit holds one token per generation request admitted (running or
	// waiting for a slot); nil means no limit.
	admit chan struct{}
}

// defaultDuration maps 0 to def and a negative duration to none (0).
func defaultDuration(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// New checks cfg and builds a server.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("serve: no engine")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Temperature < 0 {
		return nil, fmt.Errorf("serve: negative default temperature %g", cfg.Temperature)
	}
	reg, err := newRegistry(cfg.BaseName, cfg.Adapters)
	if err != nil {
		return nil, err
	}
	cfg.HeaderTimeout = defaultDuration(cfg.HeaderTimeout, DefaultHeaderTimeout)
	cfg.BodyTimeout = defaultDuration(cfg.BodyTimeout, DefaultBodyTimeout)
	cfg.WriteStall = defaultDuration(cfg.WriteStall, DefaultWriteStall)
	s := &Server{cfg: cfg, reg: reg, log: cfg.Logger, met: newMetrics(), started: time.Now()}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxQueue >= 0 {
		s.admit = make(chan struct{}, cfg.Engine.ContextOptions().NSeqMax+cfg.MaxQueue)
	}
	s.cfg.MaxQueue = cfg.MaxQueue
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m := cfg.Engine.Model()
	switch {
	case cfg.ChatTemplate != "":
		// Try the template now so that a typo fails at start, not at the first chat.
		r, err := llamachat.New(m, cfg.ChatTemplate)
		if err == nil {
			_, err = r.Render([]llama.ChatMessage{{Role: "user", Content: "hi"}}, true)
		}
		if err != nil {
			return nil, fmt.Errorf("serve: chat template %q: %w", cfg.ChatTemplate, err)
		}
		s.tmpl, s.hasTmpl, s.chat = cfg.ChatTemplate, true, r
	case m.Info().ChatTemplate != "":
		s.hasTmpl = true
		// A model whose template the Jinja engine cannot compile still serves
		// completions; its chat requests fail with the reason.
		if s.chat, s.chatErr = llamachat.New(m, ""); s.chatErr != nil {
			s.log.Warn("the model's chat template cannot be rendered; /v1/chat/completions will fail (use --chat-template)", "err", s.chatErr)
		}
	default:
		s.log.Warn("the model has no chat template; /v1/chat/completions will fail (use --chat-template)")
	}
	s.handler = s.routes()
	return s, nil
}

// Models returns the served model names: the base, then the base with each adapter.
func (s *Server) Models() []string {
	var out []string
	for _, m := range s.reg.list(0) {
		out = append(out, m.ID)
	}
	return out
}

// Handler returns the server's HTTP handler, for use with a server of one's own.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.route(mux, "GET /health", "health", false, s.handleHealth)
	s.route(mux, "GET /metrics", "metrics", true, s.handleMetrics)
	s.route(mux, "GET /v1/models", "models", true, s.handleModels)
	s.route(mux, "GET /v1/models/{model}", "models", true, s.handleModel)
	s.route(mux, "POST /v1/completions", "completions", true, s.queued(s.handleCompletions))
	s.route(mux, "POST /v1/chat/completions", "chat_completions", true, s.queued(s.handleChat))
	s.route(mux, "POST /v1/agent/run", "agent_run", true, s.queued(s.handleAgentRun))
	s.route(mux, "/", "other", true, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apiErrorf(http.StatusNotFound, ErrTypeNotFound, "not_found", "no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// statusWriter records the status code for the metrics and the log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's Flush.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// route registers h with the middleware every endpoint shares: metrics,
// logging, authentication, the body limit and the request timeout.
func (s *Server) route(mux *http.ServeMux, pattern, endpoint string, auth bool, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.met.inFlight.Add(1)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.met.inFlight.Add(-1)
			status := sw.status
			if status == 0 {
				// Nothing written: the client went away before an answer (nginx's 499).
				status = 499
			}
			d := time.Since(start)
			s.met.record(endpoint, status, d)
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", status,
				"duration", d.Round(time.Microsecond), "remote", r.RemoteAddr)
		}()
		if auth && !s.authorized(r) {
			writeError(sw, apiErrorf(http.StatusUnauthorized, ErrTypeAuthentication, "invalid_api_key",
				"missing or invalid API key; send it as \"Authorization: Bearer KEY\""))
			return
		}
		if r.ContentLength > s.cfg.MaxBodyBytes {
			// Refuse before reading a byte of it.
			writeError(sw, tooLarge(s.cfg.MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxBodyBytes)
		if e := s.readBody(sw, r); e != nil {
			writeError(sw, e)
			return
		}
		if s.cfg.Timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		h(sw, r)
	})
}

// readBody reads the whole (size-limited) body under BodyTimeout, so a client
// that trickles its body cannot hold a handler, and no handler has to read
// from the network itself.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) *APIError {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	rc := http.NewResponseController(w)
	if s.cfg.BodyTimeout > 0 {
		// Best effort: a writer that cannot set deadlines (a test recorder) has no
		// connection to stall on.
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The connection is spent: keep the (expired) deadline, so that the
		// server's drain of the unread body fails at once instead of waiting on
		// the stalled client, and close it after the answer.
		w.Header().Set("Connection", "close")
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return tooLarge(mbe.Limit)
		case errors.As(err, &ne) && ne.Timeout():
			return apiErrorf(http.StatusRequestTimeout, ErrTypeTimeout, "body_timeout",
				"the request body did not arrive within the server's limit of %s", s.cfg.BodyTimeout)
		}
		return badRequest("cannot read the request body: %v", err)
	}
	_ = rc.SetReadDeadline(time.Time{})
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// queued admits a generation request if fewer than NSeqMax+MaxQueue are
// running or waiting, and answers 503 with Retry-After otherwise: a bounded
// queue, so overload shows up as a fast, retryable refusal rather than as
// unbounded latency.
func (s *Server) queued(h http.HandlerFunc) http.HandlerFunc {
	if s.admit == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.admit <- struct{}{}:
		default:
			s.met.rejected.Add(1)
			w.Header().Set("Retry-After", "1")
			writeError(w, apiErrorf(http.StatusServiceUnavailable, ErrTypeServer, "server_busy",
				"the server is busy: %d requests are running or waiting (--parallel %d + --max-queue %d); retry later",
				cap(s.admit), s.cfg.Engine.ContextOptions().NSeqMax, s.cfg.MaxQueue))
			return
		}
		defer func() { <-s.admit }()
		h(w, r)
	}
}

func tooLarge(limit int64) *APIError {
	return apiErrorf(http.StatusRequestEntityTooLarge, ErrTypeInvalidRequest, "request_too_large",
		"request body larger than the server's limit of %d bytes", limit)
}

// authorized compares the bearer token in constant time, so response timing
// does not leak how much of a guessed key was right.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.APIKey)) == 1
}

// decode reads a JSON request body into v, mapping an oversized body to 413.
func decode(r *http.Request, v any) *APIError {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return badRequest("cannot parse the request body as JSON: %v", err)
	}
	return nil
}

// contextError maps an error caused by the request context to a timeout error
// (deadline) or nil (the client went away and nobody will read an answer).
func (s *Server) contextError(ctx context.Context) (*APIError, bool) {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return apiErrorf(http.StatusGatewayTimeout, ErrTypeTimeout, "timeout",
			"the request took longer than the server's limit of %s", s.cfg.Timeout), true
	case ctx.Err() != nil:
		return nil, true
	}
	return nil, false
}

// HealthStatus is the body of GET /health.
type HealthStatus struct {
	Status        string   `json:"status"`
	Models        []string `json:"models"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	InFlight      int64    `json:"in_flight"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, HealthStatus{Status: "ok", Models: s.Models(),
		UptimeSeconds: time.Since(s.started).Seconds(), InFlight: s.met.inFlight.Load()})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.met.write(w, s.cfg.Engine.Stats(), s.cfg.Engine.ContextOptions().NSeqMax, time.Since(s.started)); err != nil {
		s.log.Warn("writing metrics", "err", err)
	}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ModelList{Object: "list", Data: s.reg.list(s.started.Unix())})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	for _, m := range s.reg.list(s.started.Unix()) {
		if m.ID == name {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, s.reg.notFound(name))
}

// backend resolves a request's model name.
func (s *Server) backend(name string) (Backend, *APIError) {
	as, apiErr := s.reg.resolve(name)
	if apiErr != nil {
		return Backend{}, apiErr
	}
	if name == "" {
		name = s.reg.base
	}
	b := Backend{Model: name, Engine: s.cfg.Engine, Adapters: as}
	if s.hasTmpl {
		b.ChatTemplate = s.tmpl
		if b.ChatTemplate == "" {
			b.ChatTemplate = s.cfg.Engine.Model().Info().ChatTemplate
		}
	}
	return b, nil
}

// newID returns an OpenAI-style object id such as "cmpl-3f2a...".
func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Serve accepts connections on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, waits for the requests in flight (up to
// Config.ShutdownTimeout, after which their contexts are cancelled) and
// returns. Requests are not cancelled by ctx itself: a Ctrl-C must not lose
// an answer that is nearly done. The caller closes the engine after Serve
// returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Requests get a base context of their own, cancelled only when the grace
	// period is over.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s.handler,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing requests in flight", "in_flight", s.met.inFlight.Load())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		// Grace period over: cancel what is left so that the engine frees its slots,
		// and give the handlers a moment to write their error responses.
		cancelBase()
		c2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel2()
		if hs.Shutdown(c2) != nil {
			hs.Close()
		}
		err = fmt.Errorf("serve: shutdown: requests still running after %s were cancelled: %w", s.cfg.ShutdownTimeout, err)
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("serve: %w", e)
	}
	return err
}

// ListenAndServe listens on addr (e.g. "127.0.0.1:8080") and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "models", s.Models(), "auth", s.cfg.APIKey != "")
	return s.Serve(ctx, ln)
}
