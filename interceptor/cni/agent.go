package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

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

func callAgent(conf *PluginConf, verb string, req *AgentRequest) (*AgentReply, error) {
	client := &http.Client{
		Timeout: conf.timeout(),
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", conf.AgentSocket)
		}},
	}
	body, _ := json.Marshal(req)
	resp, err := client.Post("http://switchyard-agent/v1/cni/"+verb, "application/json", bytes.NewReader(body))
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		// Code 100 as for an agent that is down: a hung agent is no more use, and failOpen applies alike.
		return nil, types.NewError(errAgentUnreachable,
			fmt.Sprintf("switchyard-cni: the Switchyard interceptor at %s did not answer within %s; check its log (kubectl logs -n switchyard-system ds/switchyard-interceptor)", conf.AgentSocket, conf.timeout()),
			err.Error())
	}
	if err != nil {
		return nil, types.NewError(errAgentUnreachable,
			fmt.Sprintf("switchyard-cni: the Switchyard interceptor is not reachable at %s; is the switchyard-interceptor DaemonSet running on this node?", conf.AgentSocket),
			err.Error())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, types.NewError(errAgentRefused, "switchyard-cni: the interceptor's reply was cut off", err.Error())
	}
	reply := &AgentReply{}
	if err := json.Unmarshal(raw, reply); err != nil {
		return nil, types.NewError(errAgentRefused, "switchyard-cni: the interceptor sent an unreadable reply", string(raw))
	}
	if resp.StatusCode != http.StatusOK {
		code := reply.Code
		if code == 0 {
			code = errAgentRefused
		}
		msg := reply.Message
		if msg == "" {
			msg = fmt.Sprintf("the interceptor refused the request with HTTP %d and no message", resp.StatusCode)
		}
		return nil, types.NewError(code, "switchyard-cni: "+msg, reply.Details)
	}
	return reply, nil
}
