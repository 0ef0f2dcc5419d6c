// switchyard-cni: a chained CNI plugin (spec 0.4.0 and 1.0.0).
//
// It runs after the cluster's main plugin, passes prevResult through
// unchanged, and asks the Switchyard node agent - over a root-only unix
// socket - to register the pod in the BPF maps before any container of the
// pod starts. The agent decides whether the pod is mesh-managed; this binary
// only carries facts and relays the answer. It is Go because the runtime
// execs it once per sandbox and it must start in milliseconds.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

const defaultSocket = "/run/switchyard/cni.sock"

// Error codes 100+ are plugin-specific (the spec reserves 0-99).
const (
	errAgentUnreachable = 100
	errAgentRefused     = 101
)

// PluginConf is this plugin's entry in the conflist.
type PluginConf struct {
	types.NetConf
	// rawPrevResult is prevResult exactly as received: it is printed back
	// byte-for-byte, not re-encoded (a round trip drops fields such as an empty dns).
	rawPrevResult json.RawMessage
	AgentSocket    string `json:"agentSocket,omitempty"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
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

// AgentReply is the agent's answer; Code/Message are set on failure.
type AgentReply struct {
	Registered bool   `json:"registered"`
	Reason     string `json:"reason"`
	Code       uint   `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	Details    string `json:"details,omitempty"`
}

func parseConf(stdin []byte) (*PluginConf, error) {
	conf := &PluginConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "switchyard-cni: the network configuration on stdin is not valid JSON", err.Error())
	}
	var raw struct {
		PrevResult json.RawMessage `json:"prevResult"`
	}
	_ = json.Unmarshal(stdin, &raw)
	conf.rawPrevResult = raw.PrevResult
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "switchyard-cni: cannot parse prevResult", err.Error())
	}
	if conf.AgentSocket == "" {
		conf.AgentSocket = defaultSocket
	}
	if conf.TimeoutSeconds <= 0 {
		conf.TimeoutSeconds = 10
	}
	return conf, nil
}

func request(conf *PluginConf, args *skel.CmdArgs) (*AgentRequest, error) {
	k8s := K8sArgs{}
	if err := types.LoadArgs(args.Args, &k8s); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "switchyard-cni: cannot parse CNI_ARGS", err.Error())
	}
	req := &AgentRequest{
		CNIVersion:   conf.CNIVersion,
		ContainerID:  args.ContainerID,
		Netns:        args.Netns,
		Ifname:       args.IfName,
		PodNamespace: string(k8s.K8S_POD_NAMESPACE),
		PodName:      string(k8s.K8S_POD_NAME),
		PodUID:       string(k8s.K8S_POD_UID),
		IPs:          []string{},
	}
	if conf.PrevResult != nil {
		res, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "switchyard-cni: cannot convert prevResult", err.Error())
		}
		for _, ip := range res.IPs {
			req.IPs = append(req.IPs, ip.Address.IP.String())
		}
	}
	return req, nil
}

func callAgent(conf *PluginConf, verb string, req *AgentRequest) (*AgentReply, error) {
	client := &http.Client{
		Timeout: time.Duration(conf.TimeoutSeconds) * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", conf.AgentSocket)
		}},
	}
	body, _ := json.Marshal(req)
	resp, err := client.Post("http://switchyard-agent/v1/cni/"+verb, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, types.NewError(errAgentUnreachable,
			fmt.Sprintf("switchyard-cni: the Switchyard interceptor is not reachable at %s; is the switchyard-interceptor DaemonSet running on this node?", conf.AgentSocket),
			err.Error())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	reply := &AgentReply{}
	if err := json.Unmarshal(raw, reply); err != nil {
		return nil, types.NewError(errAgentRefused, "switchyard-cni: the interceptor sent an unreadable reply", string(raw))
	}
	if resp.StatusCode != http.StatusOK {
		code := reply.Code
		if code == 0 {
			code = errAgentRefused
		}
		return nil, types.NewError(code, "switchyard-cni: "+reply.Message, reply.Details)
	}
	return reply, nil
}

func logLine(conf *PluginConf, format string, a ...any) {
	if conf.LogFile == "" {
		return
	}
	f, err := os.OpenFile(conf.LogFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339Nano)}, a...)...)
}

// passThrough prints prevResult unchanged. In a conflist every plugin shares
// the list's cniVersion, so prevResult is already in the version to answer in.
func passThrough(conf *PluginConf) error {
	if len(conf.rawPrevResult) == 0 {
		return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, conf.CNIVersion)
	}
	_, err := os.Stdout.Write(append(conf.rawPrevResult, '\n'))
	return err
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig,
			"switchyard-cni must be chained after a plugin that assigns IPs (no prevResult in the configuration)", "")
	}
	req, err := request(conf, args)
	if err != nil {
		return err
	}
	if req.PodName == "" {
		logLine(conf, "ADD %s: not a Kubernetes pod (no K8S_POD_NAME); passing through", args.ContainerID)
		return passThrough(conf)
	}
	reply, err := callAgent(conf, "add", req)
	if err != nil {
		if e, ok := err.(*types.Error); ok && e.Code == errAgentUnreachable && conf.FailOpen {
			logLine(conf, "ADD %s/%s: FAIL-OPEN, pod starts without interception: %s", req.PodNamespace, req.PodName, e.Details)
			return passThrough(conf)
		}
		logLine(conf, "ADD %s/%s: failed: %v", req.PodNamespace, req.PodName, err)
		return err
	}
	logLine(conf, "ADD %s/%s: registered=%t reason=%s", req.PodNamespace, req.PodName, reply.Registered, reply.Reason)
	return passThrough(conf)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	req, err := request(conf, args)
	if err != nil {
		return err
	}
	// DEL must succeed whenever it can: an unreachable agent cleans up on reconcile.
	if _, err := callAgent(conf, "del", req); err != nil {
		if e, ok := err.(*types.Error); ok && e.Code == errAgentUnreachable {
			logLine(conf, "DEL %s: agent unreachable, left to reconcile: %s", args.ContainerID, e.Details)
			return nil
		}
		return err
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "switchyard-cni CHECK needs prevResult", "")
	}
	req, err := request(conf, args)
	if err != nil || req.PodName == "" {
		return err
	}
	_, err = callAgent(conf, "check", req)
	return err
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck},
		version.PluginSupports("0.4.0", "1.0.0"), "switchyard-cni: registers mesh pods with the Switchyard interceptor")
}
