// Package tests runs the Go SDK against tempora (or, with TEMPORA_ADDRESS, any Temporal-API
// server). TestMain starts one tempora for the whole package:
//
//	TEMPORA_BIN       the tempora binary (default ../../target/debug/tempora, relative to compat/go)
//	TEMPORA_ADDRESS   use this server (host:port) instead and start nothing
//	TEMPORA_CLUSTER_DB  start three cluster nodes on this PostgreSQL database instead of one
//	                  server: clients call the first, workers poll the second (every call
//	                  crosses nodes as the cluster routes it)
//	COMPAT_SDK_LOG    the SDK's log level: debug, info, warn (default), error
package tests

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// env is what every test uses: the server's address and one client on namespace default,
// and the client workers poll with (the same one, except on a cluster).
var env struct {
	address string
	client  client.Client
	workers client.Client
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	address := os.Getenv("TEMPORA_ADDRESS")
	workerAddress := address
	var servers []*tempora
	if address == "" {
		bin, err := temporaBin()
		if err != nil {
			fmt.Fprintln(os.Stderr, "compat/go:", err)
			return 2
		}
		args := [][]string{{"--db", ":memory:"}}
		if db := os.Getenv("TEMPORA_CLUSTER_DB"); db != "" {
			node := []string{"--db", db, "--cluster"}
			args = [][]string{node, node, node}
		}
		// The process is tied to this thread's life (Pdeathsig); keep the main goroutine on it.
		runtime.LockOSThread()
		for _, a := range args {
			srv, err := startTempora(bin, a)
			if err != nil {
				fmt.Fprintln(os.Stderr, "compat/go:", err)
				stopAll(servers)
				return 2
			}
			servers = append(servers, srv)
		}
		defer stopAll(servers)
		address, workerAddress = servers[0].address, servers[len(servers)/2].address
		// An interrupted run still stops tempora (Pdeathsig covers crashes and test timeouts).
		interrupted := make(chan os.Signal, 1)
		signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-interrupted
			stopAll(servers)
			os.Exit(2)
		}()
	}

	c, err := dial(address, 30*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compat/go: no Temporal API at %s: %v\n", address, err)
		printLogs(servers)
		return 2
	}
	defer c.Close()
	workers := c
	if workerAddress != address {
		if workers, err = dial(workerAddress, 30*time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "compat/go: no Temporal API at %s: %v\n", workerAddress, err)
			printLogs(servers)
			return 2
		}
		defer workers.Close()
	}
	env.address, env.client, env.workers = address, c, workers

	code := m.Run()
	stopAll(servers)
	if code != 0 {
		printLogs(servers)
	} else {
		for _, srv := range servers {
			_ = os.Remove(srv.logPath)
		}
	}
	return code
}

func stopAll(servers []*tempora) {
	for _, srv := range servers {
		srv.stop()
	}
}

func printLogs(servers []*tempora) {
	for _, srv := range servers {
		srv.printLog()
	}
}

// temporaBin is TEMPORA_BIN, or ../../target/debug/tempora relative to the module root.
func temporaBin() (string, error) {
	bin := os.Getenv("TEMPORA_BIN")
	if bin == "" {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file)) // compat/go
		bin = filepath.Join(root, "..", "..", "target", "debug", "tempora")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	if info, err := os.Stat(bin); err != nil || info.IsDir() {
		return "", fmt.Errorf("no tempora binary at %s: build it (cargo build) or set TEMPORA_BIN, or set TEMPORA_ADDRESS to use a running server", bin)
	}
	return bin, nil
}

// tempora is a server process started for this package.
type tempora struct {
	address string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	once    sync.Once
}

func startTempora(bin string, args []string) (*tempora, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		srv, err := tryStartTempora(bin, args)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryStartTempora(bin string, args []string) (*tempora, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp("", "tempora-compat-go-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	address := "127.0.0.1:" + strconv.Itoa(port)
	args = append([]string{"server", "start", "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--http-port", "0", "--ui-port", "0"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	srv := &tempora{address: address, cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(srv.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-srv.exited:
			srv.printLog()
			return nil, fmt.Errorf("tempora exited before accepting connections on %s (%s)", address, cmd.ProcessState)
		default:
		}
		conn, err := net.DialTimeout("tcp", address, time.Second)
		if err == nil {
			conn.Close()
			return srv, nil
		}
		if time.Now().After(deadline) {
			srv.stop()
			srv.printLog()
			return nil, fmt.Errorf("tempora did not accept connections on %s within 30s", address)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (s *tempora) stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// printLog shows the end of tempora's log on stderr.
func (s *tempora) printLog() {
	f, err := os.Open(s.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	fmt.Fprintf(os.Stderr, "---- tempora log %s (last %d lines) ----\n%s\n----\n", s.logPath, len(lines), strings.Join(lines, "\n"))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dial connects a client, retrying until the server answers (GetSystemInfo) or the time is up.
func dial(address string, within time.Duration) (client.Client, error) {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.DialContext(ctx, client.Options{HostPort: address, Namespace: "default", Logger: sdkLogger()})
		cancel()
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func sdkLogger() sdklog.Logger {
	level := slog.LevelWarn
	switch os.Getenv("COMPAT_SDK_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error":
		level = slog.LevelError
	}
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}
