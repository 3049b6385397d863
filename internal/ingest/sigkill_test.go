package ingest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// ingestProcessEnv makes the test binary an ingest server (TestIngestProcess).
const ingestProcessEnv = "PERSONA_INGEST_PROCESS_DSN"

// TestIngestProcess is the server TestAcknowledgedEventsSurviveSIGKILL
// kills: the endpoint over the event store at $PERSONA_INGEST_PROCESS_DSN,
// write key wk-a for namespace team-a. It prints its address and serves
// until killed. It is a no-op in a normal run.
func TestIngestProcess(t *testing.T) {
	dsn := os.Getenv(ingestProcessEnv)
	if dsn == "" {
		return
	}
	ctx := context.Background()
	events, err := eventstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(events, profile.NewStore(), nil)
	if _, err := svc.Register("team-a", eventsDS("product", logins14d), "wk-a"); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(svc, "127.0.0.1:0")
	go func() { <-srv.Listening(); fmt.Println("LISTENING", srv.Addr()) }()
	_ = srv.Start(ctx)
}

// TestAcknowledgedEventsSurviveSIGKILL sends 100,000 events in batches of
// 100 from 4 clients to a server process, SIGKILLs it mid-way, and checks
// that every acknowledged messageId is stored exactly once; then the
// clients retry what was not acknowledged against a new process, and the
// store holds every event exactly once, with the same aggregates as a store
// that was never killed would compute.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	if os.Getenv(ingestProcessEnv) != "" {
		return
	}
	if testing.Short() {
		t.Skip("sends 100,000 events")
	}
	ctx := context.Background()
	dsn, err := srv.CreateDatabase(ctx, fmt.Sprintf("sigkill_%d", databases.Add(1)))
	if err != nil {
		t.Fatal(err)
	}

	const batches, perBatch, clients = 1000, 100, 4
	var mu sync.Mutex
	acked := map[int]bool{} // batch number → acknowledged
	send := func(addr string, batch int) bool {
		var sb strings.Builder
		sb.WriteString(`{"batch":[`)
		for i := range perBatch {
			if i > 0 {
				sb.WriteByte(',')
			}
			n := batch*perBatch + i
			fmt.Fprintf(&sb, `{"type":"track","messageId":"m%d","userId":"u%d","event":"login","timestamp":"2026-12-01T00:00:00Z"}`, n, n%1000)
		}
		sb.WriteString(`]}`)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/batch", strings.NewReader(sb.String()))
		req.SetBasicAuth("wk-a", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	// run sends the batches not yet acknowledged, from 4 clients, until
	// each was tried once; after kill batches it SIGKILLs the server, with
	// requests in flight.
	run := func(kill int) {
		cmd, addr := startProcess(t, dsn)
		var wg sync.WaitGroup
		next := make(chan int)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range next {
					ok := send(addr, b)
					mu.Lock()
					acked[b] = acked[b] || ok
					mu.Unlock()
				}
			}()
		}
		sent := 0
		for b := range batches {
			mu.Lock()
			done := acked[b]
			mu.Unlock()
			if done {
				continue
			}
			if sent == kill {
				// Requests in flight may be committed and not acknowledged.
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			next <- b
			sent++
		}
		close(next)
		wg.Wait()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	run(batches / 2)
	mu.Lock()
	firstAcked := len(acked)
	var ackedIDs []int
	for b, ok := range acked {
		if ok {
			ackedIDs = append(ackedIDs, b)
		}
	}
	mu.Unlock()
	counts := storedCounts(t, dsn)
	for _, b := range ackedIDs {
		for i := range perBatch {
			if c := counts[fmt.Sprintf("m%d", b*perBatch+i)]; c != 1 {
				t.Fatalf("acknowledged m%d is stored %d times", b*perBatch+i, c)
			}
		}
	}
	if len(ackedIDs) == 0 || len(ackedIDs) == batches {
		t.Fatalf("%d of %d batches acknowledged before the kill: the kill did not land mid-way", len(ackedIDs), batches)
	}
	t.Logf("before the kill: %d of %d batches acknowledged (%d tried), %d events stored", len(ackedIDs), batches, firstAcked, len(counts))

	// The clients retry every unacknowledged batch against a new process.
	run(-1)
	counts = storedCounts(t, dsn)
	if len(counts) != batches*perBatch {
		t.Fatalf("%d events stored, want %d", len(counts), batches*perBatch)
	}
	for id, c := range counts {
		if c != 1 {
			t.Fatalf("%s stored %d times", id, c)
		}
	}
	// Aggregates come from the store: 100 logins per user.
	events, err := eventstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	aggs, _ := eventstore.Compile([]v1alpha1.EventAggregate{{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login"}})
	users := 0
	if err := events.Profiles(ctx, "team-a", aggs, nil, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), func(p *eventstore.Profile) error {
		users++
		if p.Values["logins"] != int64(batches*perBatch/1000) {
			return fmt.Errorf("%s has %v logins, want %d", p.UserID, p.Values["logins"], batches*perBatch/1000)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if users != 1000 {
		t.Errorf("%d users, want 1000", users)
	}
}

// startProcess runs TestIngestProcess in a child process and returns it
// with its address.
func startProcess(t *testing.T, dsn string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestIngestProcess$")
	cmd.Env = append(os.Environ(), ingestProcessEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
			go func() { // keep draining
				for lines.Scan() {
				}
			}()
			return cmd, addr
		}
	}
	_ = cmd.Process.Kill()
	t.Fatal("the ingest process did not start")
	return nil, ""
}

// storedCounts is how many times each messageId of team-a is stored.
func storedCounts(t *testing.T, dsn string) map[string]int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(context.Background(),
		`SELECT message_id, count(*) FROM persona_events.events WHERE namespace = 'team-a' GROUP BY message_id`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
