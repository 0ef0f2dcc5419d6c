package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzPlugin runs the plugin binary on generated stdin, environment and
// agent behaviour. Seeds (run by every 'go test') are the inputs that found
// defects, and valid configurations to mutate from; 'go test -fuzz
// FuzzPlugin' explores from them. "@SOCK@" in stdin stands for the fake
// agent's socket, so that mutations keep reaching it.
func FuzzPlugin(f *testing.F) {
	for _, s := range []struct {
		command, netns uint8
		agentMode      uint8
		args, ifname   string
		stdin          string
	}{
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@"` + prev100 + `}`},
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","prevResult":{"cniVersion":"1.0.0","ips":[null]}}`},
		{1, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","prevResult":{"cniVersion":"1.0.0","ips":[null]}}`},
		{2, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","prevResult":{"cniVersion":"1.0.0","ips":[null]}}`},
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"0.4.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","prevResult":{"cniVersion":"0.4.0","interfaces":[null],"ips":[{"version":"4","address":"10.1.0.5/24"}]}}`},
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"0.4.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","prevResult":{"cniVersion":"0.4.0","ips":[null]}}`},
		{0, 1, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@"` + prev100 + `}`},
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","timeoutSeconds":9223372037` + prev100 + `}`},
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","timeoutSeconds":18446744074` + prev100 + `}`},
		{0, 0, 1, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@"` + prev100 + `}`},
		{0, 0, 2, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","failOpen":true` + prev100 + `}`},
		{1, 2, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@"}`},
		{3, 0, 0, "", "", `{"cniVersion":"1.0.0"}`},
		{0, 0, 0, "K8S_POD_NAME=x", "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@"` + prev100 + `}`},
		{0, 0, 0, podArgs, "eth0", `{"cniVersion":"1.0.0","name":"n","type":"switchyard-cni","agentSocket":"@SOCK@","prevResult":null}`},
		{0, 3, 0, podArgs, "eth0", `{"cniVersion":"1.0.0", garbage`},
	} {
		f.Add(s.command, s.netns, s.agentMode, s.args, s.ifname, s.stdin)
	}
	commands := []string{"ADD", "DEL", "CHECK", "VERSION", "GC", ""}
	modes := []string{"ok", "refuse", "garbage"}
	agents := map[string]*fakeAgent{}
	for _, m := range modes {
		agents[m] = startAgent(f, m)
	}
	podNs := podNetns(f)

	f.Fuzz(func(t *testing.T, command, netnsChoice, agentMode uint8, args, ifname, stdin string) {
		if strings.ContainsRune(args+ifname, 0) {
			t.Skip("an environment variable cannot hold NUL")
		}
		agent := agents[modes[int(agentMode)%len(modes)]]
		netns := []string{podNs, "/proc/self/ns/net", "", "/nonexistent/netns", "/proc/self/ns/mnt", "/dev/null"}[int(netnsChoice)%6]
		inv := invocation{
			command: commands[int(command)%len(commands)],
			netns:   netns,
			ifname:  ifname,
			args:    args,
			stdin:   []byte(strings.ReplaceAll(stdin, "@SOCK@", agent.socket)),
		}
		_, registeredBefore := agent.snapshot()
		o := runPlugin(t, inv)
		_, registeredAfter := agent.snapshot()

		if o.exit != 0 && o.exit != 1 {
			t.Fatalf("%s exited %d (a crash, not a CNI error): stderr %q", inv.command, o.exit, o.stderr)
		}
		if strings.Contains(o.stderr, "panic:") || strings.Contains(o.stderr, "goroutine ") {
			t.Fatalf("%s panicked: %q", inv.command, o.stderr)
		}
		if len(o.docs) > 1 || o.rest != "" {
			t.Fatalf("%s printed more than one JSON document: %q", inv.command, o.stdout)
		}
		if o.exit == 1 {
			code, msg := o.cniError()
			if len(o.docs) != 1 || code == 0 || msg == "" {
				t.Fatalf("%s failed without a CNI error with a code and a message: stdout %q stderr %q", inv.command, o.stdout, o.stderr)
			}
			if inv.command == "ADD" && registeredAfter != registeredBefore {
				t.Fatalf("ADD failed after the agent registered the pod: %q", o.stdout)
			}
			return
		}
		switch inv.command {
		case "ADD":
			var result map[string]json.RawMessage
			if len(o.docs) != 1 || json.Unmarshal(o.docs[0], &result) != nil {
				t.Fatalf("ADD succeeded without a result: %q", o.stdout)
			}
		case "DEL", "CHECK":
			if len(o.docs) != 0 {
				t.Fatalf("%s succeeded and printed %q", inv.command, o.stdout)
			}
		}
	})
}
