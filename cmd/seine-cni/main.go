// Command seine-cni is the CNI plugin that container runtimes execute for every pod network event. It
// answers VERSION itself and forwards everything else, unparsed, to the node agent's CNI server, which
// does the work. A small native binary, because it starts once per event (a Node.js process alone costs
// several times a reference plugin's whole call). The wire contract and the limits are those of
// src/cni/shim-protocol.ts; test/cni/shim.test.ts holds this binary to them.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf16"
)

const (
	about          = "Seine CNI plugin (forwards to the seine agent on this node)"
	currentVersion = "1.1.0"
	cniEndpoint    = "/v1/cni"
	defaultSocket  = "/var/run/seine/cni.sock"
	// Longer than the server's own request timeout, so that a slow driver call comes back as its CNI error.
	defaultTimeoutMs = 110_000
	maxStdinBytes    = 1048576 // 1 MiB
	// Linux's own bound on one environment string (MAX_ARG_STRLEN).
	maxEnvValueBytes = 131072
	maxTimerMs       = 1<<31 - 1
)

var (
	supportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	cniCommands       = []string{"ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"}
	// CNI_COMMAND travels as `command`.
	forwardedEnv = []string{"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"}
)

// Well-known CNI error codes (spec 1.1).
const (
	codeInvalidEnvironment = 4
	codeIoFailure          = 5
	codeDecodeFailure      = 6
	codeInvalidConfig      = 7
	codeTryAgainLater      = 11
	codePluginNotAvailable = 50
	codeInternal           = 999
)

type cniError struct {
	CniVersion string   `json:"cniVersion,omitempty"`
	Code       jsNumber `json:"code"`
	Msg        string   `json:"msg"`
	Details    string   `json:"details,omitempty"`
}

func (e *cniError) Error() string { return e.Msg + ": " + e.Details }

func newError(code int, msg, details string) *cniError {
	return &cniError{Code: jsNumber(code), Msg: msg, Details: details}
}

// jsNumber prints as JavaScript prints a number, so that errors read the same as the agent's.
type jsNumber float64

func (n jsNumber) MarshalJSON() ([]byte, error) { return []byte(formatNumber(float64(n))), nil }

func formatNumber(f float64) string {
	switch {
	case math.IsInf(f, 0) || math.IsNaN(f):
		return "null" // JSON.stringify(Infinity)
	case f == 0:
		return "0"
	case math.Abs(f) >= 1e-7 && math.Abs(f) < 1e21:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+300, 1e-07
	mant, exp, _ := strings.Cut(s, "e")
	sign, digits := exp[:1], strings.TrimLeft(exp[1:], "0")
	return mant + "e" + sign + digits
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasControlCharacters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// brief shows a config value in a few characters: strings and numbers (cut at 60 UTF-16 units, as the
// agent cuts them), containers only named.
func brief(raw []byte) string {
	if len(raw) == 0 {
		return "undefined"
	}
	var s string
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		var v string
		_ = json.Unmarshal(raw, &v)
		b, _ := marshal(v)
		s = string(b)
	case 't', 'f', 'n':
		s = string(raw)
	default:
		f, _ := strconv.ParseFloat(string(raw), 64)
		s = formatNumber(f)
	}
	if u := utf16.Encode([]rune(s)); len(u) > 60 {
		return string(utf16.Decode(u[:57])) + "..."
	}
	return s
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func invalidConfig(details string) *cniError {
	return newError(codeInvalidConfig, "invalid network configuration", details)
}

// settings reads cniSocket and cniTimeoutSeconds as the agent does (code 7 when unusable).
func settings(members []member) (socket string, timeoutMs int64, err *cniError) {
	socket = defaultSocket
	if raw := lookup(members, "cniSocket"); raw != nil {
		ok := stringValue(raw, &socket) && strings.HasPrefix(socket, "/") && !hasControlCharacters(socket)
		if !ok {
			return "", 0, invalidConfig("cniSocket: must be an absolute path without control characters (got " + brief(raw) + ")")
		}
	}
	timeoutMs = defaultTimeoutMs
	if raw := lookup(members, "cniTimeoutSeconds"); raw != nil {
		ms := math.NaN()
		if c := raw[0]; c == '-' || c >= '0' && c <= '9' {
			if f, perr := strconv.ParseFloat(string(raw), 64); perr == nil || errors.Is(perr, strconv.ErrRange) {
				if !math.IsInf(f, 0) && f > 0 {
					ms = math.Ceil(f * 1000)
				}
			}
		}
		if !(ms <= maxTimerMs) {
			return "", 0, invalidConfig(fmt.Sprintf("cniTimeoutSeconds: must be a number of seconds above 0 and at most %s (got %s)", formatNumber(maxTimerMs/1000.0), brief(raw)))
		}
		timeoutMs = int64(ms)
	}
	return socket, timeoutMs, nil
}

func readStdin() ([]byte, *cniError) {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, maxStdinBytes+1))
	if err != nil {
		return nil, newError(codeIoFailure, "error reading stdin", err.Error())
	}
	if len(b) > maxStdinBytes {
		return nil, newError(codeIoFailure, "configuration on stdin is too large", fmt.Sprintf("more than %d bytes", maxStdinBytes))
	}
	return b, nil
}

// unreachableOutcome is what a command amounts to when no agent answers: DEL has nothing to undo now
// (the agent reconciles on start); nil means success.
func unreachableOutcome(command, why string) *cniError {
	details := why + " (is the seine agent running on this node?)"
	switch command {
	case "DEL":
		return nil
	case "STATUS":
		return newError(codePluginNotAvailable, "seine agent is not reachable", details)
	}
	return newError(codeTryAgainLater, "seine agent is not reachable", details)
}

// replyError decodes the agent's error object; nil when it does not have the shape of one.
func replyError(raw []byte) *cniError {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return nil
	}
	var e cniError
	var code float64
	rawCode := fields["code"]
	if len(rawCode) == 0 || !(rawCode[0] == '-' || rawCode[0] >= '0' && rawCode[0] <= '9') || json.Unmarshal(rawCode, &code) != nil || code != math.Trunc(code) {
		return nil
	}
	e.Code = jsNumber(code)
	if !stringValue(fields["msg"], &e.Msg) {
		return nil
	}
	for key, to := range map[string]*string{"details": &e.Details, "cniVersion": &e.CniVersion} {
		if v, ok := fields[key]; ok && !stringValue(v, to) {
			return nil
		}
	}
	return &e
}

// stringValue decodes raw into to when it is a JSON string (and not null, which encoding/json would let by).
func stringValue(raw []byte, to *string) bool {
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, to) == nil
}

type invocation struct {
	Command string            `json:"command"`
	Env     map[string]string `json:"env"`
	Stdin   string            `json:"stdin"`
}

// run handles one invocation and returns the exit code; what the runtime reads goes to stdout.
func run(stdout, stderr io.Writer) int {
	version := currentVersion
	fail := func(e *cniError) int {
		if e.CniVersion == "" {
			e.CniVersion = version
		}
		b, _ := marshal(e)
		fmt.Fprintf(stdout, "%s\n", b)
		return 1
	}
	command, ok := os.LookupEnv("CNI_COMMAND")
	if !ok || command == "" {
		fmt.Fprintf(stderr, "%s\nCNI protocol versions supported: %s\n", about, strings.Join(supportedVersions, ", "))
		return fail(newError(codeInvalidEnvironment, "required env variables [CNI_COMMAND] missing", ""))
	}
	if !contains(cniCommands, command) {
		return fail(newError(codeInvalidEnvironment, "unknown CNI_COMMAND: "+command, ""))
	}
	if command == "VERSION" {
		// Stdin is not read: a runtime may leave it open.
		b, _ := marshal(map[string]any{"cniVersion": currentVersion, "supportedVersions": supportedVersions})
		fmt.Fprintf(stdout, "%s\n", b)
		return 0
	}
	stdin, cerr := readStdin()
	if cerr != nil {
		return fail(cerr)
	}
	members, isObject, err := parseTop(stdin)
	if err != nil {
		return fail(newError(codeDecodeFailure, "cannot decode network configuration from stdin", err.Error()))
	}
	if !isObject {
		return fail(invalidConfig("(root): must be object"))
	}
	if raw := lookup(members, "cniVersion"); raw != nil {
		var v string
		if stringValue(raw, &v) && contains(supportedVersions, v) {
			version = v
		}
	}
	socket, timeoutMs, cerr := settings(members)
	if cerr != nil {
		return fail(cerr)
	}
	inv := invocation{Command: command, Env: map[string]string{}, Stdin: decodeUTF8(stdin)}
	for _, name := range forwardedEnv {
		value, ok := os.LookupEnv(name)
		if !ok {
			continue
		}
		if len(value) > maxEnvValueBytes {
			return fail(newError(codeInvalidEnvironment, name+" is too long", fmt.Sprintf("more than %d bytes", maxEnvValueBytes)))
		}
		inv.Env[name] = value
	}
	body, err := marshal(inv)
	if err != nil {
		return fail(newError(codeInternal, err.Error(), ""))
	}

	reply, err := post(socket, cniEndpoint, body, timeoutMs)
	var unreachable *unreachableError
	if errors.As(err, &unreachable) {
		if e := unreachableOutcome(command, unreachable.Error()); e != nil {
			return fail(e)
		}
		fmt.Fprintf(stderr, "seine-cni: %s; DEL treated as done (the agent reconciles on start)\n", unreachable.Error())
		return 0
	}
	var ce *cniError
	if errors.As(err, &ce) {
		return fail(ce)
	}
	if err != nil {
		return fail(newError(codeInternal, "unexpected answer from seine agent", err.Error()))
	}
	if reply.status != 200 {
		return fail(newError(codeInternal, "seine agent rejected the request", fmt.Sprintf("HTTP %d: %s", reply.status, cut(reply.body, 400))))
	}
	var answer map[string]json.RawMessage
	if err := json.Unmarshal(reply.body, &answer); err != nil || answer == nil {
		why := "not an object"
		if err != nil {
			why = err.Error()
		}
		return fail(newError(codeInternal, "unexpected answer from seine agent", why+": "+cut(reply.body, 400)))
	}
	if raw, ok := answer["error"]; ok {
		e := replyError(raw)
		if e == nil {
			e = newError(codeInternal, "unexpected answer from seine agent", cut(raw, 400))
		}
		return fail(e)
	}
	if raw, ok := answer["result"]; ok {
		var out bytes.Buffer
		if err := json.Compact(&out, raw); err != nil {
			return fail(newError(codeInternal, "unexpected answer from seine agent", err.Error()))
		}
		fmt.Fprintf(stdout, "%s\n", out.Bytes())
	}
	return 0
}

// decodeUTF8 is the text the agent would read from these bytes: invalid sequences become U+FFFD.
func decodeUTF8(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

func cut(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return decodeUTF8(b)
}

func main() {
	os.Exit(run(os.Stdout, os.Stderr))
}
