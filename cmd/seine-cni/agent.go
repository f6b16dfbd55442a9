package main

// The CNI server's client: one HTTP/1.1 POST per connection on the agent's unix socket. A few lines over
// net rather than net/http, which would add to the start-up of every call.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// unreachableError: no agent is serving (no socket, stale socket, it died mid-request, it is wedged),
// so nothing this node set up can be acted on now.
type unreachableError struct{ why string }

func (e *unreachableError) Error() string { return e.why }

type httpReply struct {
	status int
	body   []byte
}

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT: "ENOENT", syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ECONNRESET: "ECONNRESET", syscall.EPIPE: "EPIPE",
	syscall.EACCES: "EACCES", syscall.EPERM: "EPERM", syscall.ENOTSOCK: "ENOTSOCK", syscall.EINVAL: "EINVAL",
	syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.ENOTDIR: "ENOTDIR", syscall.EPROTOTYPE: "EPROTOTYPE",
}

// errnoName names a socket error as Node.js does (ECONNREFUSED), for messages that read the same.
func errnoName(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "EIO"
	}
	if name, ok := errnoNames[errno]; ok {
		return name
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// errClosed: the server closed the connection without a byte of answer (it died mid-request).
var errClosed = errors.New("the server closed the connection without answering")

// connError sorts a socket failure into "no agent" (unreachableError) and "cannot talk to it" (code 5).
// (post sorts out deadlines first.)
func connError(socket string, err error) error {
	switch name := errnoName(err); name {
	case "ENOENT", "ECONNREFUSED", "EPIPE":
		return &unreachableError{fmt.Sprintf("cannot reach %s: %s", socket, name)}
	case "ECONNRESET":
		return &unreachableError{fmt.Sprintf("cannot reach %s: %s", socket, err.Error())}
	default:
		return newError(codeIoFailure, "cannot talk to seine agent", fmt.Sprintf("%s: %s: %s", socket, name, err.Error()))
	}
}

func post(socket, path string, body []byte, timeoutMs int64) (*httpReply, error) {
	timeout := time.Duration(timeoutMs) * time.Millisecond
	timedOut := &unreachableError{fmt.Sprintf("cannot reach %s: no answer within %d ms", socket, timeoutMs)}
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil, timedOut
		}
		return nil, connError(socket, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, len(body))
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, timedOut
		}
		return nil, connError(socket, err)
	}
	reply, err := readReply(bufio.NewReader(conn))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, timedOut
	}
	if errors.Is(err, errClosed) {
		return nil, &unreachableError{fmt.Sprintf("cannot reach %s: %s", socket, err.Error())}
	}
	if err != nil && !errors.Is(err, errProtocol) {
		return nil, connError(socket, err)
	}
	return reply, err
}

var errProtocol = errors.New("not the HTTP protocol")

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

// readReply reads one response: a Content-Length body, a chunked one, or one up to the end of the
// connection.
func readReply(r *bufio.Reader) (*httpReply, error) {
	status, err := r.ReadString('\n')
	if err == io.EOF && status == "" {
		return nil, errClosed
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	fields := strings.Fields(status)
	if len(fields) < 2 || (fields[0] != "HTTP/1.1" && fields[0] != "HTTP/1.0") || len(fields[1]) != 3 {
		return nil, protocolError("not an HTTP answer: %q", cut([]byte(strings.TrimRight(status, "\r\n")), 200))
	}
	code, err := strconv.Atoi(fields[1])
	if err != nil {
		return nil, protocolError("not an HTTP answer: %q", status)
	}
	length, chunked := -1, false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return nil, protocolError("incomplete HTTP answer")
			}
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			if length, err = strconv.Atoi(strings.TrimSpace(value)); err != nil || length < 0 {
				return nil, protocolError("bad content-length %s", strings.TrimSpace(value))
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(strings.TrimSpace(value), "chunked")
		}
	}
	var body []byte
	switch {
	case chunked:
		body, err = readChunked(r)
	case length >= 0:
		body = make([]byte, length)
		_, err = io.ReadFull(r, body)
	default:
		body, err = io.ReadAll(r)
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return nil, protocolError("connection closed in the middle of the answer")
	}
	if err != nil {
		return nil, err
	}
	return &httpReply{status: code, body: body}, nil
}

func readChunked(r *bufio.Reader) ([]byte, error) {
	var body bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		sizeText, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeText), 16, 64)
		if err != nil || size < 0 {
			return nil, protocolError("bad chunk size")
		}
		if size == 0 {
			return body.Bytes(), nil
		}
		if _, err := io.CopyN(&body, r, size); err != nil {
			return nil, err
		}
		if _, err := r.Discard(2); err != nil {
			return nil, err
		}
	}
}
