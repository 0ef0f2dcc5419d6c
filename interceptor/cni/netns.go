package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"
)

// checkNetns validates CNI_NETNS before the agent hears of the pod: it must
// exist, be a network namespace, and not be the plugin's own (the host's).
// The CNI library makes the last check too, but only after the command has
// run: by then the agent would have registered the pod and stdout would
// carry two JSON documents. For DEL (forDel) a netns that is gone, or is no
// netns, is fine: only the plugin's own is refused.
func checkNetns(args *skel.CmdArgs, who string, forDel bool) error {
	p := args.Netns
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if forDel && (p == "" || err != nil) {
		return nil
	}
	if errors.Is(err, unix.ENOENT) {
		return types.NewError(types.ErrUnknownContainer,
			fmt.Sprintf("switchyard-cni: network namespace '%s' of %s does not exist; the sandbox is gone or the runtime passed a wrong path", p, who), "")
	}
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("switchyard-cni: cannot open network namespace '%s' of %s", p, who), err.Error())
	}
	defer unix.Close(fd)
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); (err != nil || t != unix.CLONE_NEWNET) && !forDel {
		return types.NewError(types.ErrInvalidNetNS,
			fmt.Sprintf("switchyard-cni: '%s' (CNI_NETNS of %s) is not a network namespace; the runtime must pass a netns path such as /var/run/netns/<id>", p, who), "")
	}
	override := strings.ToUpper(args.NetnsOverride)
	if override == "TRUE" || override == "1" {
		return nil
	}
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(fd, &theirs); err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("switchyard-cni: cannot stat network namespace '%s'", p), err.Error())
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &ours); err != nil {
		return types.NewError(types.ErrInvalidNetNS, "switchyard-cni: cannot read the plugin's own network namespace", err.Error())
	}
	if theirs.Dev == ours.Dev && theirs.Ino == ours.Ino {
		return types.NewError(types.ErrInvalidNetNS,
			fmt.Sprintf("switchyard-cni: CNI_NETNS '%s' of %s is the plugin's own network namespace (plugin's netns and netns from CNI_NETNS should not be the same); a pod sandbox needs a netns of its own", p, who), "")
	}
	return nil
}
