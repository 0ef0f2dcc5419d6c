package main

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"testing"
)

// The wire API fixture both sides are tested against (api/agent-wire.json;
// the TypeScript side is api/agent-wire.test.ts).
type wireFixture struct {
	DefaultSocket string            `json:"defaultSocket"`
	Paths         map[string]string `json:"paths"`
	ErrorCodes    map[string]uint   `json:"errorCodes"`
	Request       json.RawMessage   `json:"request"`
	Reply         json.RawMessage   `json:"reply"`
	ErrorReply    json.RawMessage   `json:"errorReply"`
}

func loadWire(t *testing.T) wireFixture {
	raw, err := os.ReadFile("../../api/agent-wire.json")
	if err != nil {
		t.Fatal(err)
	}
	var w wireFixture
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func keys(t *testing.T, raw []byte) []string {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestWireDefaultsAndCodesMatchTheFixture(t *testing.T) {
	w := loadWire(t)
	if defaultSocket != w.DefaultSocket {
		t.Errorf("defaultSocket is %q, the agent's is %q", defaultSocket, w.DefaultSocket)
	}
	if errAgentUnreachable != w.ErrorCodes["agentUnreachable"] || errAgentRefused != w.ErrorCodes["agentRefused"] {
		t.Errorf("error codes %d/%d, fixture %v", errAgentUnreachable, errAgentRefused, w.ErrorCodes)
	}
	for verb, p := range w.Paths {
		if "/v1/cni/"+verb != p {
			t.Errorf("the plugin posts to /v1/cni/%s, the agent serves %s", verb, p)
		}
	}
}

func TestWireBodiesMatchTheFixture(t *testing.T) {
	w := loadWire(t)
	var req AgentRequest
	if err := json.Unmarshal(w.Request, &req); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(req)
	if got, want := keys(t, out), keys(t, w.Request); !reflect.DeepEqual(got, want) {
		t.Errorf("the plugin sends fields %v, the agent reads %v", got, want)
	}
	var back map[string]any
	_ = json.Unmarshal(out, &back)
	var fixture map[string]any
	_ = json.Unmarshal(w.Request, &fixture)
	if !reflect.DeepEqual(back, fixture) {
		t.Errorf("request round trip changed values: %v != %v", back, fixture)
	}
	for _, raw := range []json.RawMessage{w.Reply, w.ErrorReply} {
		var r AgentReply
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
	}
	var e AgentReply
	_ = json.Unmarshal(w.ErrorReply, &e)
	if e.Code != w.ErrorCodes["registrationFailed"] || e.Message == "" {
		t.Errorf("error reply read as %+v", e)
	}
	var ok AgentReply
	_ = json.Unmarshal(w.Reply, &ok)
	if !ok.Registered || ok.Reason != "registered" {
		t.Errorf("reply read as %+v", ok)
	}
}
