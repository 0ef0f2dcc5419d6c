package main

// The plugin is tested as the runtime runs it: the test binary execs itself
// as switchyard-cni (TestMain), with the CNI environment and config on
// stdin, against a fake agent that speaks the agent's HTTP API on a unix
// socket. Every run must print at most one JSON document, exit 0 or 1 (never
// a panic), and never fail after the agent registered the pod.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const asPluginEnv = "SWITCHYARD_CNI_TEST_AS_PLUGIN"

var sandbox struct {
	once sync.Once
	cmd  *exec.Cmd
	path string
	err  error
}

func TestMain(m *testing.M) {
	if os.Getenv(asPluginEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if sandbox.cmd != nil {
		_ = sandbox.cmd.Process.Kill()
		_ = sandbox.cmd.Wait()
	}
	os.Exit(code)
}

// podNetns is a network namespace other than the plugin's: a sleeping child
// in a netns of its own, as a pod sandbox would be.
func podNetns(t testing.TB) string {
	sandbox.once.Do(func() {
		for _, argv := range [][]string{{"unshare", "-n", "sleep", "3600"}, {"unshare", "-rn", "sleep", "3600"}} {
			cmd := exec.Command(argv[0], argv[1:]...)
			if sandbox.err = cmd.Start(); sandbox.err != nil {
				continue
			}
			p := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
			own, _ := os.Readlink("/proc/self/ns/net")
			for i := 0; i < 500; i++ { // unshare runs before exec: wait until the child's netns differs
				if l, err := os.Readlink(p); err == nil && l != own {
					sandbox.cmd, sandbox.path = cmd, p
					return
				}
				if cmd.ProcessState != nil {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			sandbox.err = fmt.Errorf("%v did not enter a new network namespace", argv)
		}
	})
	if sandbox.path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot make a network namespace for the pod (needs root or user namespaces): %v", sandbox.err)
		}
		t.Skipf("needs a second network namespace (root, or unprivileged user namespaces): %v", sandbox.err)
	}
	return sandbox.path
}

// fakeAgent answers POST /v1/cni/{add,del,check} like the interceptor does.
type fakeAgent struct {
	socket string
	mode   string // ok | refuse | garbage | hang
	mu     sync.Mutex
	calls  []string
	// registered counts ADDs answered with success: a pod the agent now holds.
	registered int
	release    chan struct{}
}

func startAgent(t testing.TB, mode string) *fakeAgent {
	dir, err := os.MkdirTemp("", "sycni-")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{socket: filepath.Join(dir, "agent.sock"), mode: mode, release: make(chan struct{})}
	l, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(a.serve)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		close(a.release)
		_ = srv.Close()
		_ = os.RemoveAll(dir)
	})
	return a
}

func (a *fakeAgent) serve(w http.ResponseWriter, r *http.Request) {
	verb := strings.TrimPrefix(r.URL.Path, "/v1/cni/")
	var req AgentRequest
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.calls = append(a.calls, verb)
	a.mu.Unlock()
	switch {
	case a.mode == "hang":
		select {
		case <-a.release:
		case <-r.Context().Done():
		}
		return
	case a.mode == "garbage":
		_, _ = w.Write([]byte("<html>not json"))
		return
	case json.Unmarshal(body, &req) != nil:
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"code":6,"message":"switchyard-cni sent an unreadable request"}`))
		return
	case a.mode == "refuse":
		w.WriteHeader(422)
		_, _ = w.Write([]byte(`{"code":102,"message":"cannot register mesh pod: map full"}`))
		return
	}
	if verb == "add" {
		a.mu.Lock()
		a.registered++
		a.mu.Unlock()
	}
	_, _ = w.Write([]byte(`{"registered":true,"reason":"registered"}`))
}

func (a *fakeAgent) snapshot() (calls []string, registered int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...), a.registered
}

type invocation struct {
	command, netns, ifname, args string
	stdin                        []byte
}

type outcome struct {
	exit           int
	stdout, stderr string
	// docs are the JSON documents on stdout; rest is what follows them, if not JSON.
	docs []json.RawMessage
	rest string
}

func (o outcome) cniError() (code uint, msg string) {
	var e struct {
		Code uint   `json:"code"`
		Msg  string `json:"msg"`
	}
	if len(o.docs) == 1 {
		_ = json.Unmarshal(o.docs[0], &e)
	}
	return e.Code, e.Msg
}

func runPlugin(t testing.TB, inv invocation) outcome {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{
		asPluginEnv + "=1",
		"PATH=" + os.Getenv("PATH"),
		"CNI_COMMAND=" + inv.command,
		"CNI_CONTAINERID=c0ffee",
		"CNI_NETNS=" + inv.netns,
		"CNI_IFNAME=" + inv.ifname,
		"CNI_PATH=/opt/cni/bin",
		"CNI_ARGS=" + inv.args,
	}
	cmd.Stdin = bytes.NewReader(inv.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		o.exit = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running the plugin: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if err != io.EOF {
				rest, _ := io.ReadAll(dec.Buffered())
				o.rest = string(rest)
				if o.rest == "" {
					o.rest = err.Error()
				}
			}
			break
		}
		o.docs = append(o.docs, doc)
	}
	return o
}

const podArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=apps;K8S_POD_NAME=web;K8S_POD_UID=u1;K8S_POD_INFRA_CONTAINER_ID=c0ffee"

func conf(agent *fakeAgent, extra string) []byte {
	return []byte(`{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"` + agent.socket + `"` + extra + `}`)
}

const prev100 = `,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.0.5/24","interface":0}]}`

func TestAddPassesPrevResultThroughAfterTheAgentRegisters(t *testing.T) {
	agent := startAgent(t, "ok")
	o := runPlugin(t, invocation{command: "ADD", netns: podNetns(t), ifname: "eth0", args: podArgs, stdin: conf(agent, prev100)})
	if o.exit != 0 || len(o.docs) != 1 || o.rest != "" {
		t.Fatalf("ADD: exit %d, stdout %q, stderr %q", o.exit, o.stdout, o.stderr)
	}
	var got map[string]any
	_ = json.Unmarshal(o.docs[0], &got)
	if got["ips"].([]any)[0].(map[string]any)["address"] != "10.1.0.5/24" {
		t.Fatalf("prevResult not passed through: %s", o.docs[0])
	}
	if calls, n := agent.snapshot(); n != 1 || len(calls) != 1 {
		t.Fatalf("agent calls %v, registered %d", calls, n)
	}
}

// C1: null entries in prevResult were dereferenced (1.0.0) or crashed the
// library's version conversion (0.4.0); DEL and CHECK panicked alike.
func TestNullEntriesInPrevResultAreACniErrorNotAPanic(t *testing.T) {
	agent := startAgent(t, "ok")
	netns := podNetns(t)
	cases := map[string]string{
		"1.0.0 ips [null]":        `,"prevResult":{"cniVersion":"1.0.0","ips":[null]}`,
		"1.0.0 interfaces [null]": `,"prevResult":{"cniVersion":"1.0.0","interfaces":[null],"ips":[]}`,
		"1.0.0 routes [null]":     `,"prevResult":{"cniVersion":"1.0.0","routes":[null]}`,
		"1.0.0 ip without address": `,"prevResult":{"cniVersion":"1.0.0","ips":[{"interface":0}]}`,
		"1.0.0 ips not a list":    `,"prevResult":{"cniVersion":"1.0.0","ips":{}}`,
		"1.0.0 bad address":       `,"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5"}]}`,
		"prevResult a string":     `,"prevResult":"x"`,
	}
	for name, prev := range cases {
		for _, command := range []string{"ADD", "CHECK"} {
			o := runPlugin(t, invocation{command: command, netns: netns, ifname: "eth0", args: podArgs, stdin: conf(agent, prev)})
			code, msg := o.cniError()
			if o.exit != 1 || len(o.docs) != 1 || code != 6 || !strings.Contains(msg, "prevResult") {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", command, name, o.exit, o.stdout, o.stderr)
			}
		}
		// DEL does not need prevResult: it cleans up whatever prevResult says.
		o := runPlugin(t, invocation{command: "DEL", netns: netns, ifname: "eth0", args: podArgs, stdin: conf(agent, prev)})
		if o.exit != 0 || o.stdout != "" {
			t.Errorf("DEL %s: exit %d, stdout %q, stderr %q", name, o.exit, o.stdout, o.stderr)
		}
	}
	for _, v := range []string{"0.4.0", "1.0.0"} {
		for _, prev := range []string{`"interfaces":[null]`, `"ips":[null]`} {
			stdin := []byte(`{"cniVersion":"` + v + `","name":"n","type":"switchyard-cni","agentSocket":"` + agent.socket + `","prevResult":{"cniVersion":"` + v + `",` + prev + `}}`)
			o := runPlugin(t, invocation{command: "ADD", netns: netns, ifname: "eth0", args: podArgs, stdin: stdin})
			if code, _ := o.cniError(); o.exit != 1 || code != 6 {
				t.Errorf("ADD %s %s: exit %d, stdout %q, stderr %q", v, prev, o.exit, o.stdout, o.stderr)
			}
		}
	}
	if _, n := agent.snapshot(); n != 0 {
		t.Fatalf("the agent registered %d pods from malformed results", n)
	}
}

// C2: with the plugin's own netns, the pod was registered and then the CNI
// library printed a second JSON document with its error.
func TestTheNetnsIsCheckedBeforeTheAgentIsCalled(t *testing.T) {
	agent := startAgent(t, "ok")
	dir := t.TempDir()
	notNetns := filepath.Join(dir, "file")
	_ = os.WriteFile(notNetns, nil, 0o600)
	cases := []struct {
		netns string
		code  uint
		msg   string
	}{
		{"/proc/self/ns/net", 8, "is the plugin's own network namespace"},
		{filepath.Join(dir, "missing"), 3, "does not exist"},
		{notNetns, 8, "is not a network namespace"},
		{"/proc/self/ns/mnt", 8, "is not a network namespace"},
	}
	for _, c := range cases {
		for _, command := range []string{"ADD", "CHECK"} {
			o := runPlugin(t, invocation{command: command, netns: c.netns, ifname: "eth0", args: podArgs, stdin: conf(agent, prev100)})
			code, msg := o.cniError()
			if o.exit != 1 || len(o.docs) != 1 || o.rest != "" || code != c.code || !strings.Contains(msg, c.msg) {
				t.Errorf("%s with netns %s: exit %d, stdout %q, stderr %q", command, c.netns, o.exit, o.stdout, o.stderr)
			}
		}
	}
	o := runPlugin(t, invocation{command: "DEL", netns: "/proc/self/ns/net", ifname: "eth0", args: podArgs, stdin: conf(agent, prev100)})
	if code, _ := o.cniError(); o.exit != 1 || len(o.docs) != 1 || code != 8 {
		t.Errorf("DEL in the plugin's netns: exit %d, stdout %q", o.exit, o.stdout)
	}
	// DEL of a sandbox whose netns is gone succeeds.
	if o := runPlugin(t, invocation{command: "DEL", netns: filepath.Join(dir, "missing"), ifname: "eth0", args: podArgs, stdin: conf(agent, prev100)}); o.exit != 0 || o.stdout != "" {
		t.Errorf("DEL of a gone netns: exit %d, stdout %q, stderr %q", o.exit, o.stdout, o.stderr)
	}
	if calls, _ := agent.snapshot(); len(calls) != 1 || calls[0] != "del" {
		t.Fatalf("the agent was called for a refused netns: %v", calls)
	}
}

// C3: a large timeoutSeconds overflowed time.Duration into "no timeout".
func TestTimeoutSecondsIsBoundedAndApplied(t *testing.T) {
	agent := startAgent(t, "hang")
	netns := podNetns(t)
	for _, v := range []string{"9223372037", "18446744074", "-1", "301", "1.5", "1e3", "0.0"} {
		o := runPlugin(t, invocation{command: "ADD", netns: netns, ifname: "eth0", args: podArgs, stdin: conf(agent, `,"timeoutSeconds":`+v+prev100)})
		code, msg := o.cniError()
		if o.exit != 1 || (code != 7 && code != 6) || !strings.Contains(msg, "timeoutSeconds") {
			t.Errorf("timeoutSeconds %s: exit %d, stdout %q, stderr %q", v, o.exit, o.stdout, o.stderr)
		}
	}
	if calls, _ := agent.snapshot(); len(calls) != 0 {
		t.Fatalf("the agent was called with an invalid timeout: %v", calls)
	}
	started := time.Now()
	o := runPlugin(t, invocation{command: "ADD", netns: netns, ifname: "eth0", args: podArgs, stdin: conf(agent, `,"timeoutSeconds":1`+prev100)})
	code, msg := o.cniError()
	if o.exit != 1 || code != 100 || !strings.Contains(msg, "did not answer within 1s") {
		t.Fatalf("hung agent: exit %d, stdout %q, stderr %q", o.exit, o.stdout, o.stderr)
	}
	if d := time.Since(started); d > 20*time.Second {
		t.Fatalf("ADD against a hung agent took %s with timeoutSeconds 1", d)
	}
}

func TestAgentFailuresAreRelayed(t *testing.T) {
	netns := podNetns(t)
	for mode, want := range map[string]uint{"refuse": 102, "garbage": 101} {
		agent := startAgent(t, mode)
		o := runPlugin(t, invocation{command: "ADD", netns: netns, ifname: "eth0", args: podArgs, stdin: conf(agent, prev100)})
		if code, _ := o.cniError(); o.exit != 1 || len(o.docs) != 1 || code != want {
			t.Errorf("agent %s: exit %d, stdout %q, stderr %q", mode, o.exit, o.stdout, o.stderr)
		}
	}
}
