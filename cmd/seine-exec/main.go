// Command seine-exec runs host commands for the Seine agent. The agent sends one JSON request per line on
// stdin and reads one JSON reply per line on stdout, matched by id; requests run concurrently. Forking from
// this small process costs a fraction of forking from the agent, whose large heap made every spawn block its
// event loop for about 12 ms. It exits as soon as the agent closes its stdin (the agent stopped, or died): a
// command still running goes on by itself, as it would have as the agent's own child. A request with ipSteps
// instead of argv is iproute2 work the helper does itself, without a process (steps.go).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

type request struct {
	ID   uint64   `json:"id"`
	Argv []string `json:"argv"`
	// Env replaces the environment when set (as KEY=VALUE); otherwise the helper's own, which is the agent's.
	Env       []string `json:"env,omitempty"`
	Cwd       string   `json:"cwd,omitempty"`
	Input     string   `json:"input,omitempty"`
	TimeoutMs int64    `json:"timeoutMs,omitempty"`
	// IPSteps, instead of Argv: iproute2 work done natively (steps.go).
	IPSteps *ipStepsRequest `json:"ipSteps,omitempty"`
}

type reply struct {
	ID     uint64  `json:"id"`
	Code   *int    `json:"code"`
	Signal *string `json:"signal"`
	Stdout string  `json:"stdout"`
	Stderr string  `json:"stderr"`
	// The command could not be started (e.g. ENOENT), as Node's spawn reports it.
	Error    string `json:"error,omitempty"`
	TimedOut bool   `json:"timedOut,omitempty"`
	// Unsupported: IPSteps holds something not done natively; nothing was done.
	Unsupported string `json:"unsupported,omitempty"`
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGABRT: "SIGABRT", syscall.SIGPIPE: "SIGPIPE", syscall.SIGBUS: "SIGBUS",
	syscall.SIGQUIT: "SIGQUIT", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGALRM: "SIGALRM",
}

// startError names a failure to start as Node.js does ("spawn ip ENOENT").
func startError(argv0 string, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return "spawn " + argv0 + " ENOENT"
		case syscall.EACCES:
			return "spawn " + argv0 + " EACCES"
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "spawn " + argv0 + " ENOENT"
	}
	return "spawn " + argv0 + ": " + err.Error()
}

func runOne(req request) reply {
	rep := reply{ID: req.ID}
	if len(req.Argv) == 0 {
		rep.Error = "spawn: empty command"
		return rep
	}
	ctx := context.Background()
	var cancel context.CancelFunc = func() {}
	if req.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	if req.Env != nil {
		cmd.Env = req.Env
		// Resolved on the command's own PATH, as Node's spawn does with an env given.
		for _, kv := range req.Env {
			if strings.HasPrefix(kv, "PATH=") && !strings.Contains(req.Argv[0], "/") {
				if p, err := lookPath(req.Argv[0], strings.TrimPrefix(kv, "PATH=")); err == nil {
					cmd.Path = p
					cmd.Err = nil
				}
			}
		}
	}
	cmd.Dir = req.Cwd
	cmd.Stdin = strings.NewReader(req.Input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	rep.Stdout, rep.Stderr = stdout.String(), stderr.String()
	if ctx.Err() == context.DeadlineExceeded {
		rep.TimedOut = true
	}
	if cmd.ProcessState == nil {
		rep.Error = startError(req.Argv[0], err)
		return rep
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name, known := signalNames[ws.Signal()]
		if !known {
			name = ws.Signal().String()
		}
		rep.Signal = &name
		return rep
	}
	code := cmd.ProcessState.ExitCode()
	rep.Code = &code
	return rep
}

// lookPath finds file in the directories of path (exec.LookPath reads the helper's own PATH).
func lookPath(file, path string) (string, error) {
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + file
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	var mu sync.Mutex
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req request
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				// Not the agent's protocol: nothing can be answered reliably.
				os.Stderr.WriteString("seine-exec: bad request: " + jerr.Error() + "\n")
				os.Exit(2)
			}
			go func() {
				var rep reply
				if req.IPSteps != nil {
					rep = runIpSteps(req.ID, req.IPSteps)
				} else {
					rep = runOne(req)
				}
				mu.Lock()
				defer mu.Unlock()
				_ = out.Encode(rep)
			}()
		}
		if err != nil {
			break
		}
	}
}
