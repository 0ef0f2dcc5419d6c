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
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// plugin carries where results go, so that tests run the real commands.
type plugin struct {
	out io.Writer
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
// Only ADD prints, and only after chained() found a prevResult.
func (p plugin) passThrough(conf *PluginConf) error {
	_, err := p.out.Write(append(conf.PrevResult, '\n'))
	return err
}

// chained parses the configuration and prevResult of an ADD or CHECK, and
// validates CNI_NETNS: everything that can be refused is refused before the
// agent is asked anything.
func chained(args *skel.CmdArgs, verb string) (*PluginConf, *AgentRequest, error) {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	if !conf.hasPrevResult() {
		return nil, nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("switchyard-cni %s: must be chained after a plugin that assigns IPs (no prevResult in the configuration)", verb), "")
	}
	ips, err := prevResultIPs(conf.PrevResult)
	if err != nil {
		return nil, nil, err
	}
	req, err := request(conf, args, ips)
	if err != nil {
		return nil, nil, err
	}
	who := req.pod()
	if req.PodName == "" {
		who = "container " + args.ContainerID
	}
	if err := checkNetns(args, who, false); err != nil {
		return nil, nil, err
	}
	return conf, req, nil
}

func (p plugin) cmdAdd(args *skel.CmdArgs) error {
	conf, req, err := chained(args, "ADD")
	if err != nil {
		return err
	}
	if req.PodName == "" {
		logLine(conf, "ADD %s: not a Kubernetes pod (no K8S_POD_NAME); passing through", args.ContainerID)
		return p.passThrough(conf)
	}
	reply, err := callAgent(conf, "add", req)
	if err != nil {
		if e, ok := err.(*types.Error); ok && e.Code == errAgentUnreachable && conf.FailOpen {
			logLine(conf, "ADD %s: FAIL-OPEN, pod starts without interception: %s", req.pod(), e.Details)
			return p.passThrough(conf)
		}
		logLine(conf, "ADD %s: failed: %v", req.pod(), err)
		return err
	}
	logLine(conf, "ADD %s: registered=%t reason=%s", req.pod(), reply.Registered, reply.Reason)
	return p.passThrough(conf)
}

// cmdDel never reads prevResult: the agent finds the registration by
// container id, so a DEL with a damaged prevResult still cleans up (a DEL
// that fails is retried by the runtime for as long as the sandbox exists).
func (p plugin) cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	req, err := request(conf, args, nil)
	if err != nil {
		return err
	}
	if err := checkNetns(args, "container "+args.ContainerID, true); err != nil {
		return err
	}
	if _, err := callAgent(conf, "del", req); err != nil {
		// DEL must succeed whenever it can: an unreachable agent cleans up on reconcile.
		if e, ok := err.(*types.Error); ok && e.Code == errAgentUnreachable {
			logLine(conf, "DEL %s: agent unreachable, left to reconcile: %s", args.ContainerID, e.Details)
			return nil
		}
		return err
	}
	return nil
}

func (p plugin) cmdCheck(args *skel.CmdArgs) error {
	conf, req, err := chained(args, "CHECK")
	if err != nil || req.PodName == "" {
		return err
	}
	_, err = callAgent(conf, "check", req)
	return err
}

func main() {
	p := plugin{out: os.Stdout}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.cmdAdd, Del: p.cmdDel, Check: p.cmdCheck},
		version.PluginSupports("0.4.0", "1.0.0"), "switchyard-cni: registers mesh pods with the Switchyard interceptor")
}
