package main

// The hand-written HTTP/1.1 exchange with the agent (agent.go's post): the
// framings a server may choose, and replies that are not HTTP at all, each
// served raw over a unix socket.

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// rawAgent answers one request with exactly reply, after reading the request head and body.
func rawAgent(t *testing.T, reply string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		length := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length = atoi(strings.TrimSpace(v))
			}
		}
		_, _ = r.Discard(length)
		_, _ = c.Write([]byte(reply))
	}()
	return sock
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestPostFramings(t *testing.T) {
	body := `{"registered":true,"reason":"registered"}`
	cases := map[string]string{
		"content-length": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\n\r\n" + body,
		"chunked":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + body[:16] + "\r\n19\r\n" + body[16:] + "\r\n0\r\n\r\n",
		"until close":    "HTTP/1.0 200 OK\r\n\r\n" + body,
	}
	for name, reply := range cases {
		t.Run(name, func(t *testing.T) {
			status, raw, err := post(rawAgent(t, reply), "/v1/cni/add", []byte(`{}`), 2*time.Second)
			if err != nil || status != 200 || string(raw) != body {
				t.Fatalf("got %d %q %v, want 200 %q", status, raw, err, body)
			}
		})
	}
}

// An agent killed mid-request is down, not refusing: DEL then succeeds and
// leaves the rest to reconcile, and failOpen applies (code 100, as net/http gave).
func TestAgentGoneMidRequestIsUnreachable(t *testing.T) {
	for name, reply := range map[string]string{"nothing": "", "half a head": "HTTP/1.1 200 OK\r\nContent-Le"} {
		t.Run(name, func(t *testing.T) {
			_, err := callAgent(&PluginConf{AgentSocket: rawAgent(t, reply), TimeoutSeconds: "2"}, "del", &AgentRequest{})
			if e, ok := err.(*types.Error); !ok || e.Code != errAgentUnreachable {
				t.Fatalf("got %v, want code %d", err, errAgentUnreachable)
			}
		})
	}
	_, err := callAgent(&PluginConf{AgentSocket: rawAgent(t, "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n{"), TimeoutSeconds: "2"}, "del", &AgentRequest{})
	if e, ok := err.(*types.Error); !ok || e.Code != errAgentRefused || !strings.Contains(e.Msg, "cut off") {
		t.Fatalf("a reply cut off in its body: got %v, want code %d", err, errAgentRefused)
	}
}

func TestPostRefusesWhatIsNotHTTP(t *testing.T) {
	for name, reply := range map[string]string{
		"not http":       "SSH-2.0-OpenSSH_9.2\r\n",
		"no status code": "HTTP/1.1 OK\r\n\r\n",
		"huge length":    "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
		"bad chunk":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"cut off":        "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n{\"registered\"",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := post(rawAgent(t, reply), "/v1/cni/add", []byte(`{}`), 2*time.Second); err == nil {
				t.Fatalf("a reply of %q was accepted", reply)
			}
		})
	}
}
