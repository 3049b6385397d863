package ingest

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/usersuccess/persona-operator/internal/tracking"
)

// Handler serves POST /v1/identify, /v1/track, /v1/group, /v1/page and
// /v1/batch. The write key is the basic-auth user name (or the body's
// writeKey). The answer is 200 {"success":true} once the calls are committed;
// a 4xx with {"success":false,"reason","message"} for a request that can
// never succeed (nothing of it is stored); 503 when the event store fails
// (clients retry; the messageIds make the retry safe).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, t := range []tracking.Type{tracking.Identify, tracking.Track, tracking.Group, tracking.Page, tracking.Batch} {
		mux.HandleFunc("/v1/"+string(t), func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, t) })
	}
	return mux
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request, endpoint tracking.Type) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(w, &tracking.Error{Status: http.StatusMethodNotAllowed, Reason: tracking.ReasonUnsupportedMethod, Message: "use POST"})
		return
	}
	limit := int64(tracking.MaxCallBytes)
	if endpoint == tracking.Batch {
		limit = tracking.MaxBatchBytes
	}
	in := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		// Some SDKs compress; the limits apply to the decompressed body.
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			answer(w, &tracking.Error{Status: http.StatusBadRequest, Reason: tracking.ReasonInvalidJSON, Message: "the body is not gzip"})
			return
		}
		defer func() { _ = zr.Close() }()
		in = zr
	}
	// One byte more than allowed is enough to tell the body is too large.
	body, err := io.ReadAll(io.LimitReader(in, limit+1))
	if err != nil {
		answer(w, &tracking.Error{Status: http.StatusBadRequest, Reason: tracking.ReasonInvalidJSON, Message: "the body could not be read"})
		return
	}
	// A basic-auth write key is checked first: an unknown key learns nothing
	// about its body. A key in the body can only be checked once parsed.
	key, _, hasAuth := r.BasicAuth()
	hasAuth = hasAuth && key != ""
	if hasAuth && !s.known(w, key) {
		return
	}
	now := s.now()
	req, perr := tracking.Parse(endpoint, body, now)
	if perr != nil {
		answer(w, perr)
		return
	}
	if !hasAuth {
		key = req.WriteKey
	}
	namespace, ok := s.namespaceOf(key)
	if !ok && !s.known(w, key) { // unregistered since, or a body key
		return
	}
	start := time.Now()
	written, err := s.events.Write(r.Context(), namespace, req.Calls, now)
	observeCommit(time.Since(start))
	if err != nil {
		answer(w, &tracking.Error{Status: http.StatusServiceUnavailable, Reason: "StoreUnavailable",
			Message: "the event store did not commit the calls; retry"})
		return
	}
	var accounts []string
	for _, c := range req.Calls {
		if c.Type == tracking.Group {
			accounts = append(accounts, c.GroupID)
		}
	}
	observeCalls(namespace, written.Inserted, len(req.Calls))
	if written.Inserted > 0 {
		s.written(namespace, written, accounts)
	}
	observeRequest(http.StatusOK, "")
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"success":true}`)
}

// known answers 401 for a write key no Events DataSource has.
func (s *Service) known(w http.ResponseWriter, key string) bool {
	if _, ok := s.namespaceOf(key); ok {
		return true
	}
	if s.starting() {
		// After a restart the write keys come back as the DataSource
		// controller syncs each Events source: until then an unknown key may
		// be a good one, and a 503 makes the SDK retry where a 401 would make
		// it drop the calls.
		answer(w, &tracking.Error{Status: http.StatusServiceUnavailable, Reason: "Starting",
			Message: "the endpoint is starting and does not know this write key yet; retry"})
		return false
	}
	answer(w, &tracking.Error{Status: http.StatusUnauthorized, Reason: tracking.ReasonUnauthorized,
		Message: "the write key (the basic-auth user name) is not one of an Events DataSource"})
	return false
}

func answer(w http.ResponseWriter, e *tracking.Error) {
	observeRequest(e.Status, e.Reason)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Success bool `json:"success"`
		*tracking.Error
	}{false, e})
}

// Server runs the endpoint, the re-computation loop and retention pruning as
// one manager Runnable on the leader (the profiles it updates are the
// leader's).
type Server struct {
	Service *Service
	// BindAddress is where the endpoint listens (e.g. :8445; 127.0.0.1:0 in
	// tests).
	BindAddress string
	// TLS, when set, serves HTTPS; otherwise plain HTTP, for a TLS-terminating
	// Ingress or mesh in front.
	TLS *tls.Config
	// PruneEvery is how often events past their retention are deleted
	// (default 1h).
	PruneEvery time.Duration

	listening chan struct{}
	addr      string
}

// NewServer returns a server; Listening is closed once it accepts.
func NewServer(svc *Service, bind string) *Server {
	return &Server{Service: svc, BindAddress: bind, listening: make(chan struct{})}
}

// Listening is closed once the endpoint listens.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addr is the address it listens on, once Listening.
func (s *Server) Addr() string { return s.addr }

// NeedLeaderElection: only the leader's store is read by the controllers.
func (s *Server) NeedLeaderElection() bool { return true }

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", s.BindAddress)
	if err != nil {
		return err
	}
	if s.TLS != nil {
		l = tls.NewListener(l, s.TLS)
	}
	s.addr = l.Addr().String()
	srv := &http.Server{Handler: s.Service.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	close(s.listening)
	go func() { _ = s.Service.Run(ctx) }()
	go s.prune(ctx)
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// prune deletes events past the longest retention of each namespace's
// sources, a bounded batch at a time.
func (s *Server) prune(ctx context.Context) {
	every := s.PruneEvery
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.Service.Prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneBatch is how many events one DELETE removes.
const pruneBatch = 10_000

// Prune deletes, in every namespace with Events sources, the events older
// than the longest retention among its sources.
func (s *Service) Prune(ctx context.Context) {
	s.mu.Lock()
	retention := map[string]time.Duration{}
	for ns, byName := range s.sources {
		for _, src := range byName {
			retention[ns] = max(retention[ns], src.retention)
		}
	}
	s.mu.Unlock()
	for ns, keep := range retention {
		if keep <= 0 {
			continue
		}
		before := s.now().Add(-keep)
		if err := s.events.FoldSeen(ctx, ns, before); err != nil {
			continue // pruning now would lose first and last seen: next time
		}
		var deleted int64
		for ctx.Err() == nil {
			n, err := s.events.Prune(ctx, ns, before, pruneBatch)
			deleted += n
			if err != nil || n < pruneBatch {
				break
			}
		}
		if deleted > 0 {
			// The aggregates over every retained event lost some: the states
			// are read from the store again.
			s.mu.Lock()
			s.pruned[ns] = true
			s.mu.Unlock()
		}
	}
}
