// Native ip steps: what IpRoute.applySteps (src/host/ip.ts) would run as a script of iproute2, nsenter, ethtool
// and sysctl processes (about nine per pod interface), done here with rtnetlink, an ioctl and /proc/sys writes
// from a thread moved into each step's namespace. The outcome is the script's: exit code, and stderr in
// iproute2's words.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// ipStep: batch lines, then follow-up commands, in one namespace (the request's when empty).
type ipStep struct {
	Netns     string     `json:"netns,omitempty"`
	Lines     []string   `json:"lines"`
	FollowUps [][]string `json:"followUps,omitempty"`
}

type ipStepsRequest struct {
	// Netns is where steps without their own run (the agent's host namespace; empty: the helper's own).
	Netns string   `json:"netns,omitempty"`
	Steps []ipStep `json:"steps"`
	// Force: every line and command is tried and failures are ignored (`ip -force`).
	Force bool `json:"force,omitempty"`
	// FailCode is the exit code of a failure in step i: FailCode + i when StepCodes, else FailCode.
	FailCode  int  `json:"failCode"`
	StepCodes bool `json:"stepCodes,omitempty"`
}

// A parsed step: its namespace and its operations in order.
type nativeStep struct {
	netns string
	ops   []func(nl *rtnl) error
}

// followUp reads `ethtool -K D tx off` and `sysctl -q -w K=V ...`.
func followUp(argv []string) (func(nl *rtnl) error, error) {
	if len(argv) == 5 && argv[0] == "ethtool" && argv[1] == "-K" && argv[3] == "tx" && argv[4] == "off" {
		dev := argv[2]
		return func(*rtnl) error { return txChecksumOff(dev) }, nil
	}
	if len(argv) > 3 && argv[0] == "sysctl" && argv[1] == "-q" && argv[2] == "-w" {
		type write struct{ path, value string }
		var writes []write
		for _, a := range argv[3:] {
			at := strings.IndexByte(a, '=')
			if at <= 0 {
				return nil, unsupported("sysctl %q", a)
			}
			// A key's '.' separates directories; a '/' in it stands for a '.' within a name (a device's).
			parts := strings.Split(a[:at], ".")
			for i, p := range parts {
				p = strings.ReplaceAll(p, "/", ".")
				if p == "" || p == "." || p == ".." {
					return nil, unsupported("sysctl %q", a)
				}
				parts[i] = p
			}
			writes = append(writes, write{"/proc/sys/" + strings.Join(parts, "/"), a[at+1:]})
		}
		return func(*rtnl) error {
			for _, w := range writes {
				if err := os.WriteFile(w.path, []byte(w.value+"\n"), 0); err != nil {
					return fmt.Errorf("sysctl: %s", err.Error())
				}
			}
			return nil
		}, nil
	}
	return nil, unsupported("command %q", strings.Join(argv, " "))
}

func parseSteps(req *ipStepsRequest) ([]nativeStep, error) {
	steps := make([]nativeStep, 0, len(req.Steps))
	for _, st := range req.Steps {
		ns := nativeStep{netns: st.Netns}
		if ns.netns == "" {
			ns.netns = req.Netns
		}
		for i, line := range st.Lines {
			op, err := parseLine(line)
			if err != nil {
				return nil, err
			}
			n := i + 1
			// iproute2 names the failed batch line.
			ns.ops = append(ns.ops, func(nl *rtnl) error {
				if err := op(nl); err != nil {
					return fmt.Errorf("%s\nCommand failed -:%d", err.Error(), n)
				}
				return nil
			})
		}
		for _, argv := range st.FollowUps {
			op, err := followUp(argv)
			if err != nil {
				return nil, err
			}
			ns.ops = append(ns.ops, op)
		}
		steps = append(steps, ns)
	}
	return steps, nil
}

// inNetns runs fn on a thread in the namespace at path (the helper's own when empty), with a netlink socket
// of that namespace. The thread is moved back after; if it cannot be, it is never used again.
func inNetns(path string, fn func(nl *rtnl) error) error {
	if path == "" {
		nl, err := openRtnl()
		if err != nil {
			return err
		}
		defer nl.close()
		return fn(nl)
	}
	target, err := openNetns(path)
	if err != nil {
		return err
	}
	defer syscall.Close(target)
	runtime.LockOSThread()
	orig, err := syscall.Open("/proc/thread-self/ns/net", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer syscall.Close(orig)
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setting the network namespace \"%s\" failed: %s", path, err.Error())
	}
	defer func() {
		// Still locked on failure: the goroutine ends with its thread, which the runtime then discards.
		if setns(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	nl, err := openRtnl()
	if err != nil {
		return err
	}
	defer nl.close()
	return fn(nl)
}

func setns(fd int) error {
	if _, _, errno := syscall.RawSyscall(sysSetns, uintptr(fd), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// runIpSteps answers one request: unsupported (nothing done), or the outcome the script would have had.
func runIpSteps(id uint64, req *ipStepsRequest) reply {
	rep := reply{ID: id}
	steps, err := parseSteps(req)
	if err != nil {
		rep.Unsupported = err.Error()
		return rep
	}
	var stderr strings.Builder
	for i, st := range steps {
		failed := inNetns(st.netns, func(nl *rtnl) error {
			for _, op := range st.ops {
				if err := op(nl); err != nil {
					if !req.Force {
						return err
					}
					stderr.WriteString(err.Error() + "\n")
				}
			}
			return nil
		})
		if failed != nil {
			stderr.WriteString(failed.Error() + "\n")
			code := req.FailCode
			if req.StepCodes {
				code += i
			}
			rep.Code = &code
			rep.Stderr = stderr.String()
			return rep
		}
	}
	zero := 0
	rep.Code = &zero
	rep.Stderr = stderr.String()
	return rep
}
