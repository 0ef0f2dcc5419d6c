package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// defaultSocket is the agent's default socketPath (api/agent-wire.json; wire_test.go checks it).
const defaultSocket = "/run/switchyard/agent.sock"

// Bounds of timeoutSeconds: a value past them would overflow time.Duration
// into "no timeout", and an ADD that hangs on the agent blocks the sandbox.
const (
	defaultTimeoutSeconds = 10
	maxTimeoutSeconds     = 300
)

// PluginConf is this plugin's entry in the conflist.
type PluginConf struct {
	types.NetConf
	// PrevResult is prevResult exactly as received. It shadows NetConf's own
	// field so that a malformed one reaches our checks instead of the
	// library's conversions, and it is printed back byte-for-byte, not
	// re-encoded (a round trip drops fields such as an empty dns).
	PrevResult     json.RawMessage `json:"prevResult,omitempty"`
	AgentSocket    string          `json:"agentSocket,omitempty"`
	// TimeoutSeconds is read as any JSON number so that an out-of-range one
	// gets the range error, not a decoding error; timeout() is the value.
	TimeoutSeconds json.Number `json:"timeoutSeconds,omitempty"`
	// FailOpen lets pods start when the agent cannot be reached. They then run
	// without interception until the agent re-registers them on reconcile.
	FailOpen bool   `json:"failOpen,omitempty"`
	LogFile  string `json:"logFile,omitempty"`
}

// K8sArgs are the CNI_ARGS the kubelet sets.
type K8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive,stylecheck
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive,stylecheck
	K8S_POD_UID                types.UnmarshallableString //nolint:revive,stylecheck
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive,stylecheck
}

func parseConf(stdin []byte) (*PluginConf, error) {
	conf := &PluginConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, types.NewError(types.ErrDecodingFailure,
				fmt.Sprintf("switchyard-cni: in the network configuration, %s must be of type %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value), err.Error())
		}
		return nil, types.NewError(types.ErrDecodingFailure, "switchyard-cni: the network configuration on stdin is not valid JSON", err.Error())
	}
	if conf.AgentSocket == "" {
		conf.AgentSocket = defaultSocket
	}
	if conf.TimeoutSeconds == "" {
		conf.TimeoutSeconds = json.Number(strconv.Itoa(defaultTimeoutSeconds))
	}
	if n, err := strconv.ParseInt(string(conf.TimeoutSeconds), 10, 64); err != nil || n < 1 || n > maxTimeoutSeconds {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("switchyard-cni: timeoutSeconds is %s; set it to a whole number of seconds from 1 to %d, or leave it out for %d",
				conf.TimeoutSeconds, maxTimeoutSeconds, defaultTimeoutSeconds), "")
	}
	return conf, nil
}

// timeout is timeoutSeconds as a duration; parseConf has bounded it.
func (c *PluginConf) timeout() time.Duration {
	n, _ := strconv.ParseInt(string(c.TimeoutSeconds), 10, 64)
	return time.Duration(n) * time.Second
}

// hasPrevResult tells whether the configuration carries a prevResult at all.
func (c *PluginConf) hasPrevResult() bool {
	return len(c.PrevResult) > 0 && string(c.PrevResult) != "null"
}

// prevResultShape is the part of a 0.4.0 or 1.0.0 result this plugin reads.
// Pointers let a null entry be told apart from an empty one.
type prevResultShape struct {
	CNIVersion string             `json:"cniVersion"`
	Interfaces []*json.RawMessage `json:"interfaces"`
	IPs        []*struct {
		Address *string `json:"address"`
	} `json:"ips"`
	Routes []*json.RawMessage `json:"routes"`
}

// prevResultIPs checks prevResult's shape and returns its addresses. Any
// malformed entry is a CNI error, before anything is converted or sent.
func prevResultIPs(raw json.RawMessage) ([]string, error) {
	bad := func(format string, a ...any) error {
		return types.NewError(types.ErrDecodingFailure, "switchyard-cni: prevResult is malformed: "+fmt.Sprintf(format, a...),
			"the previous plugin in the chain produced a result this plugin cannot read; check the conflist")
	}
	var r prevResultShape
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, bad("%v", err)
	}
	for i, itf := range r.Interfaces {
		if itf == nil || string(*itf) == "null" {
			return nil, bad("interfaces[%d] is null", i)
		}
	}
	for i, rt := range r.Routes {
		if rt == nil || string(*rt) == "null" {
			return nil, bad("routes[%d] is null", i)
		}
	}
	ips := make([]string, 0, len(r.IPs))
	for i, ip := range r.IPs {
		if ip == nil {
			return nil, bad("ips[%d] is null", i)
		}
		if ip.Address == nil {
			return nil, bad("ips[%d] has no address", i)
		}
		addr, _, err := net.ParseCIDR(*ip.Address)
		if err != nil {
			return nil, bad("ips[%d].address %q is not an address in CIDR notation", i, *ip.Address)
		}
		ips = append(ips, addr.String())
	}
	return ips, nil
}

// AgentRequest is what the agent receives on POST /v1/cni/{add,del,check}.
type AgentRequest struct {
	CNIVersion   string   `json:"cniVersion"`
	ContainerID  string   `json:"containerId"`
	Netns        string   `json:"netns"`
	Ifname       string   `json:"ifname"`
	PodNamespace string   `json:"podNamespace"`
	PodName      string   `json:"podName"`
	PodUID       string   `json:"podUid"`
	IPs          []string `json:"ips"`
}

func request(conf *PluginConf, args *skel.CmdArgs, ips []string) (*AgentRequest, error) {
	k8s := K8sArgs{}
	if err := types.LoadArgs(args.Args, &k8s); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "switchyard-cni: cannot parse CNI_ARGS", err.Error())
	}
	if ips == nil {
		ips = []string{}
	}
	return &AgentRequest{
		CNIVersion:   conf.CNIVersion,
		ContainerID:  args.ContainerID,
		Netns:        args.Netns,
		Ifname:       args.IfName,
		PodNamespace: string(k8s.K8S_POD_NAMESPACE),
		PodName:      string(k8s.K8S_POD_NAME),
		PodUID:       string(k8s.K8S_POD_UID),
		IPs:          ips,
	}, nil
}

func (r *AgentRequest) pod() string { return r.PodNamespace + "/" + r.PodName }
