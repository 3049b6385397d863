// Package pgtest starts a real, throwaway PostgreSQL server for tests through
// hack/postgres.sh: no mocks. Start one per test package (TestMain, BeforeAll or a
// sync.Once) and Stop it when done.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL on 127.0.0.1.
type Server struct {
	root, dir string
	port      int
	superDSN  string
	stopOnce  sync.Once
	stopErr   error
}

// Start installs PostgreSQL if needed (Debian package) and starts a new cluster
// on a free loopback port. It takes a few seconds: share one server per package
// (see Main).
func Start() (*Server, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "hack", "postgres.sh")
	if out, err := exec.Command(script, "install").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hack/postgres.sh install: %w\n%s", err, out)
	}
	// The free port is only free until someone else binds it (parallel test
	// packages start servers too): retry with a new port.
	for attempt := 1; ; attempt++ {
		s, err := start(root, script)
		if err == nil || attempt == 3 {
			return s, err
		}
	}
}

func start(root, script string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, dir: filepath.Join(tmp, "pg"), port: port}
	// Our pid lets the script stop the server should this process die without
	// calling Stop (a test -timeout panics past every defer).
	out, err := exec.Command(script, "start", s.dir, fmt.Sprint(port), fmt.Sprint(os.Getpid())).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		_ = exec.Command(script, "stop", s.dir).Run()
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("hack/postgres.sh start: %w", err)
	}
	s.superDSN = strings.TrimSpace(string(out))
	return s, nil
}

// StartOrSkip starts a server for one test (or benchmark) and stops it on
// cleanup. Despite the name it never skips: a real database is required, so
// failing to start one fails the test.
func StartOrSkip(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// StartOrFail is StartOrSkip under a name that says what it does.
func StartOrFail(t testing.TB) *Server { t.Helper(); return StartOrSkip(t) }

// Main runs a test package against one shared server: call it from TestMain.
// setup receives the server (keep it in a package variable) and may create
// roles and tables; any failure exits with status 1.
//
//	func TestMain(m *testing.M) {
//		pgtest.Main(m, func(s *pgtest.Server) error { srv = s; return nil })
//	}
func Main(m *testing.M, setup func(*Server) error) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	code := 1
	if err := setup(s); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest setup:", err)
	} else {
		code = m.Run()
	}
	// os.Exit skips defers: stop explicitly so no server outlives the tests.
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	os.Exit(code)
}

// SuperuserDSN connects as the superuser to the postgres database.
func (s *Server) SuperuserDSN() string { return s.superDSN }

// DSN connects as user with password to db.
func (s *Server) DSN(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: fmt.Sprintf("127.0.0.1:%d", s.port), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Port is the server's loopback port.
func (s *Server) Port() int { return s.port }

// Exec runs SQL as the superuser.
func (s *Server) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.superDSN)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// CreateDatabase creates an empty database (name: lower case, no quoting
// needed) and returns the superuser's DSN for it, so a test gets tables of
// its own on the shared server.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := s.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	u, err := url.Parse(s.superDSN)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Stop stops the server and removes its files. It is safe to call twice.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		out, err := exec.Command(filepath.Join(s.root, "hack", "postgres.sh"), "stop", s.dir).CombinedOutput()
		if err != nil {
			s.stopErr = fmt.Errorf("hack/postgres.sh stop: %w: %s", err, out)
		}
		_ = os.RemoveAll(filepath.Dir(s.dir))
	})
	return s.stopErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot walks up from the working directory to the directory with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("pgtest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// CPUTime is the CPU time the server's processes have used: the postmaster,
// its exited children (the backends of closed connections, reaped into its
// children's time) and its running ones. Benchmarks report its growth per
// unit of work: on a shared machine that is steadier than a rate, which
// other processes' load moves (Linux only).
func (s *Server) CPUTime() (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	pid, _, _ := strings.Cut(string(data), "\n")
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	total := f.self + f.children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		c, err := procStat(e.Name())
		if err == nil && c.ppid == pid {
			total += c.self
		}
	}
	return total, nil
}

type procTimes struct {
	ppid           string
	self, children time.Duration
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTick = 10 * time.Millisecond

// procStat reads a process's parent and CPU times from /proc/PID/stat.
func procStat(pid string) (procTimes, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procTimes{}, err
	}
	// The command name, in parentheses, may hold spaces: fields start after it.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f))
	}
	// After the name: state, ppid, ... utime (12th), stime, cutime, cstime.
	n := make([]time.Duration, 4)
	for j := range n {
		v, err := strconv.ParseInt(f[11+j], 10, 64)
		if err != nil {
			return procTimes{}, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		n[j] = time.Duration(v) * clockTick
	}
	return procTimes{ppid: f[1], self: n[0] + n[1], children: n[2] + n[3]}, nil
}

// CPUMeter measures the CPU time of a server and of this process from its
// start (MeasureCPU) to Report.
type CPUMeter struct {
	s        *Server
	pg, self time.Duration
}

// MeasureCPU starts measuring; call it after b.ResetTimer.
func (s *Server) MeasureCPU(b *testing.B) *CPUMeter {
	b.Helper()
	m := &CPUMeter{s: s}
	m.pg, m.self = m.read(b)
	return m
}

func (m *CPUMeter) read(b *testing.B) (pg, self time.Duration) {
	b.Helper()
	pg, err := m.s.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return pg, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report reports the CPU time PostgreSQL (pg-µs/UNIT) and this process
// (go-µs/UNIT) spent per unit of work since MeasureCPU.
func (m *CPUMeter) Report(b *testing.B, units int, unit string) {
	b.Helper()
	pg, self := m.read(b)
	b.ReportMetric(float64((pg-m.pg).Microseconds())/float64(units), "pg-µs/"+unit)
	b.ReportMetric(float64((self-m.self).Microseconds())/float64(units), "go-µs/"+unit)
}
