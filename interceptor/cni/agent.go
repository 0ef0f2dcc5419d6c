package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Error codes 100+ are plugin-specific (the spec reserves 0-99).
const (
	errAgentUnreachable = 100
	errAgentRefused     = 101
)

// AgentReply is the agent's answer; Code/Message are set on failure.
type AgentReply struct {
	Registered bool   `json:"registered"`
	Reason     string `json:"reason"`
	Code       uint   `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	Details    string `json:"details,omitempty"`
}

// replyLimit bounds what the plugin reads from the agent.
const replyLimit = 1 << 20

func callAgent(conf *PluginConf, verb string, req *AgentRequest) (*AgentReply, error) {
	body, _ := json.Marshal(req)
	status, raw, err := post(conf.AgentSocket, "/v1/cni/"+verb, body, conf.timeout())
	var cut *bodyError
	if errors.As(err, &cut) {
		return nil, types.NewError(errAgentRefused, "switchyard-cni: the interceptor's reply was cut off", cut.Error())
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		// Code 100 as for an agent that is down: a hung agent is no more use, and failOpen applies alike.
		return nil, types.NewError(errAgentUnreachable,
			fmt.Sprintf("switchyard-cni: the Switchyard interceptor at %s did not answer within %s; check its log (kubectl logs -n switchyard-system ds/switchyard-interceptor)", conf.AgentSocket, conf.timeout()),
			err.Error())
	}
	if err != nil {
		// Not there, or gone before it answered (an agent killed mid-request): down, as far as this pod goes.
		return nil, types.NewError(errAgentUnreachable,
			fmt.Sprintf("switchyard-cni: the Switchyard interceptor is not reachable at %s; is the switchyard-interceptor DaemonSet running on this node?", conf.AgentSocket),
			err.Error())
	}
	reply := &AgentReply{}
	if err := json.Unmarshal(raw, reply); err != nil {
		return nil, types.NewError(errAgentRefused, "switchyard-cni: the interceptor sent an unreadable reply", string(raw))
	}
	if status != 200 {
		code := reply.Code
		if code == 0 {
			code = errAgentRefused
		}
		msg := reply.Message
		if msg == "" {
			msg = fmt.Sprintf("the interceptor refused the request with HTTP %d and no message", status)
		}
		return nil, types.NewError(code, "switchyard-cni: "+msg, reply.Details)
	}
	return reply, nil
}

// bodyError is a reply whose head arrived but whose body did not: the agent
// answered, so this is not an agent that is down.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// post sends one HTTP/1.1 request over the agent's unix socket and reads the
// reply, all within timeout. Written out rather than through net/http: the
// plugin is exec'd for every pod, and net/http (with crypto/tls and x509,
// which it links) roughly doubles the binary and its start-up.
func post(socket, path string, body []byte, timeout time.Duration) (int, []byte, error) {
	conn, err := (&net.Dialer{Timeout: timeout}).Dial("unix", socket)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, nil, err
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: switchyard-agent\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, len(body))
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		return 0, nil, err
	}
	r := bufio.NewReader(conn)
	tp := textproto.NewReader(r)
	line, err := tp.ReadLine()
	if err != nil {
		return 0, nil, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, err := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil {
		return 0, nil, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	header, err := tp.ReadMIMEHeader()
	if err != nil {
		return 0, nil, err
	}
	raw, err := readBody(r, header)
	if err != nil {
		return code, nil, &bodyError{err}
	}
	return code, raw, nil
}

// readBody reads a reply body framed by Content-Length, chunked encoding, or the end of the connection.
func readBody(r *bufio.Reader, header textproto.MIMEHeader) ([]byte, error) {
	if strings.EqualFold(header.Get("Transfer-Encoding"), "chunked") {
		var out []byte
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return nil, err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 32)
			if err != nil || size < 0 || len(out)+int(size) > replyLimit {
				return nil, fmt.Errorf("bad chunk size %q", strings.TrimSpace(line))
			}
			if size == 0 {
				return out, nil // trailers, if any, are not needed
			}
			chunk := make([]byte, size+2) // the chunk and its CRLF
			if _, err := io.ReadFull(r, chunk); err != nil {
				return nil, err
			}
			out = append(out, chunk[:size]...)
		}
	}
	if cl := header.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > replyLimit {
			return nil, fmt.Errorf("bad Content-Length %q", cl)
		}
		raw := make([]byte, n)
		_, err = io.ReadFull(r, raw)
		return raw, err
	}
	return io.ReadAll(io.LimitReader(r, replyLimit))
}
