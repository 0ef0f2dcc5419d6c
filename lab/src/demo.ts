#!/usr/bin/env node
/**
 * The main job: Switchyard installed the way users install it, on a local
 * two-node Kubernetes cluster (./realcluster.ts), and traffic through it.
 *
 *   1. build the images (cached)            5. label a namespace, apply two Deployments and a Service
 *   2. control plane and two real nodes     6. the pods: sidecar, label, registration
 *   3. switchyard certs + kubectl apply -k  7. app-a → app-b on the same node and across, through both sidecars
 *   4. what got installed                   8. app-b's NodePort from outside the cluster (DSR), client IP kept
 *                                           9. the kubectl plugin; 10. summary, teardown
 *
 *   node dist/lab/src/demo.js [--keep]
 *
 * Every piece of evidence is read the way a user reads it: kubectl get,
 * logs, exec and describe. --keep leaves the cluster running after step 10
 * until Ctrl-C. Ctrl-C at any point removes everything the demo made; a
 * second run starts from nothing.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { projectRoot } from '../../native';
import { distScript } from './netlab';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { K8S_VERSION, controlPlaneMissing, k8sBinDir } from './controlplane';
import { PodEvidence, describeNotReady } from './diagnose';
import type { HttpAnswer } from './kubenodes';
import { eventually } from './proc';
import { RealCluster, realClusterMissing } from './realcluster';
import { sweepStaleLabs } from './sweep';

const keep = process.argv.includes('--keep');
const t0 = Date.now();
const say = (s = '') => process.stdout.write(`${s}\n`);
const indent = (s: string, n = 3) => s.trimEnd().split('\n').map((l) => `${' '.repeat(n)}${l}`).join('\n');
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;

/** `$ kubectl …` and its output, as a user would see it. */
function shown(c: RealCluster, args: string[], n = 3): string {
  return indent(`$ kubectl ${args.join(' ')}\n${c.kubectl(args)}`, n);
}

const shownAnswer = (a: HttpAnswer) => (a.status ? `status=${a.status} body=${JSON.stringify(a.body.trim())}` : `FAILED: ${a.error}`);

/** `kubectl switchyard …` (the plugin, cli/kubectl-plugin.ts) as a user runs it: the lab's kubectl and kubeconfig, nothing else. */
function plugin(c: RealCluster, args: string[], n = 3): string {
  const r = spawnSync(process.execPath, [distScript('cli/kubectl-plugin.js'), ...args, '--kubeconfig', c.cp.kubeconfig], {
    encoding: 'utf8',
    env: { ...process.env, KUBECTL: path.join(k8sBinDir(), 'kubectl') },
  });
  if (r.status !== 0) throw new Error(`kubectl switchyard ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return indent(`$ kubectl switchyard ${args.join(' ')}\n${r.stdout}`, n);
}

/** What `kubectl describe pod` and `kubectl logs` say about the pods of ns that are not Ready. */
function whyNotReady(c: RealCluster, ns: string): string {
  const pods = JSON.parse(c.kubectl(['get', 'pods', '-n', ns, '-o', 'json'])).items as V1Pod[];
  const events = JSON.parse(c.kubectl(['get', 'events', '-n', ns, '-o', 'json'])).items as CoreV1Event[];
  const evidence: PodEvidence[] = pods.map((pod) => {
    const logs: Record<string, string[]> = {};
    for (const ct of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      const r = c.cp.kubectl(['logs', '-n', ns, pod.metadata!.name!, '-c', ct.name, '--tail=40']);
      logs[ct.name] = r.code === 0 ? r.stdout.trimEnd().split('\n') : [];
    }
    return { pod, events: events.filter((e) => e.involvedObject.name === pod.metadata?.name), logs };
  });
  return describeNotReady(evidence);
}

async function main(): Promise<void> {
  const missing = controlPlaneMissing() ?? realClusterMissing();
  if (missing) throw new Error(`the lab cannot start: ${missing}`);
  const stale = sweepStaleLabs();
  if (stale.length) say(`(removed leftovers of an earlier run: ${stale.length} items)`);

  const c = new RealCluster();
  current = c;
  say(`Switchyard on a local Kubernetes ${K8S_VERSION} cluster: a real control plane, two kubelet + containerd nodes, installed with kubectl apply -k.`);

  say();
  say('1. Build the images (images/: Debian trixie Node.js base, no registry, cached by content)');
  await c.startCluster(() => {
    for (const i of c.built!.images) say(`   ${i.name.padEnd(44)} ${mb(i.bytes).padStart(7)}`);
    say(`   one OCI archive ${c.images}   ${secs(c.timings.imagesMs)}`);
    say();
    say('2. Start the control plane and two nodes (containerd, runc, kubelet, kube-proxy; each node in its own netns)');
  }, (line) => say(`   ${line}`));
  say(`   etcd, kube-apiserver, kube-controller-manager, kube-scheduler (from ${k8sBinDir()})   ${secs(c.timings.controlPlaneMs)}`);
  say(`   nodes up and Ready, images imported   ${secs(c.timings.nodesMs)}`);
  say(`   kubeconfig ${c.cp.kubeconfig}`);
  say(shown(c, ['get', 'nodes', '-o', 'wide']));

  say();
  say('3. Install Switchyard as manifests/README.md says');
  await c.install((step, output) => say(indent(`$ ${step}\n${output}`)));
  say(`   installed and rolled out in ${secs(c.timings.installMs)}`);

  say();
  say('4. What runs now');
  say(shown(c, ['get', 'pods', '-n', 'switchyard-system', '-o', 'wide']));
  const agents = JSON.parse(c.kubectl(['get', 'pods', '-n', 'switchyard-system', '-l', 'app.kubernetes.io/name=switchyard-interceptor', '-o', 'json'])).items as V1Pod[];
  const agentOn = (node: string) => agents.find((p) => p.spec?.nodeName === node)!.metadata!.name!;
  const node0 = c.nodeList[0].name;
  say(shown(c, ['logs', '-n', 'switchyard-system', agentOn(node0), '-c', 'install-cni']));

  say();
  say('5. Label a namespace for injection, and apply two Deployments and a Service (lab/demo/apps.yaml)');
  c.kubectl(['create', 'namespace', 'demo']);
  say(shown(c, ['label', 'namespace', 'demo', 'switchyard.dev/injection=enabled']));
  const apps = path.join(projectRoot(), 'lab', 'demo', 'apps.yaml');
  say(indent(`$ kubectl apply -f lab/demo/apps.yaml\n${c.kubectl(['apply', '-f', apps])}`));
  const tApplied = Date.now();
  const podsReady = () => {
    const list = JSON.parse(c.kubectl(['get', 'pods', '-n', 'demo', '-o', 'json'])).items as V1Pod[];
    const ready = list.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
    return ready.length === 3 ? ready : undefined;
  };
  const pods = await eventually('3 Ready pods in namespace demo', podsReady, 120_000).catch((e: Error) => {
    throw new Error(`${e.message}\n${whyNotReady(c, 'demo')}`);
  });
  const tReady = Date.now() - tApplied;
  const podA = pods.find((p) => p.metadata!.labels!.app === 'app-a')!;
  const aNode = podA.spec!.nodeName!;
  const podsB = pods.filter((p) => p.metadata!.labels!.app === 'app-b');
  const sameB = podsB.find((p) => p.spec!.nodeName === aNode);
  const otherB = podsB.find((p) => p.spec!.nodeName !== aNode);

  say();
  say(`6. The pods got the sidecar and the managed label, and the interceptor registered them (Ready ${secs(tReady)} after apply)`);
  say(shown(c, ['get', 'pods', '-n', 'demo', '-o', 'wide']));
  for (const p of pods) {
    const init = (p.spec!.initContainers ?? []).map((x) => `${x.name} (init, restartPolicy ${x.restartPolicy ?? '-'})`);
    say(`   ${p.metadata!.name}: containers ${[...init, ...p.spec!.containers.map((x) => x.name)].join(', ')}; label switchyard.dev/managed=${p.metadata!.labels!['switchyard.dev/managed']}`);
  }
  const webhookLog = c.kubectl(['logs', '-n', 'switchyard-system', '-l', 'app.kubernetes.io/name=switchyard-webhook', '--prefix', '--tail=-1']);
  say('   the webhook\'s decisions ($ kubectl logs -n switchyard-system -l app.kubernetes.io/name=switchyard-webhook --prefix):');
  say(indent(webhookLog.split('\n').filter((l) => l.includes('namespace=demo') && l.includes('msg="pod injected"')).join('\n'), 5));
  for (const n of c.nodeList) {
    const log = c.kubectl(['logs', '-n', 'switchyard-system', agentOn(n.name), '-c', 'interceptor']);
    say(`   the interceptor on ${n.name} ($ kubectl logs -n switchyard-system ${agentOn(n.name)} -c interceptor):`);
    say(indent(log.split('\n').filter((l) => l.includes('pod=demo/') && l.includes('registered')).join('\n'), 5));
  }

  const svc = JSON.parse(c.kubectl(['get', 'service', 'app-b', '-n', 'demo', '-o', 'json']));
  const clusterIP: string = svc.spec.clusterIP;
  for (const n of c.nodeList) {
    await eventually(`the interceptor on ${n.name} to program app-b's 2 backends`, () => {
      const s = JSON.parse(c.kubectl(['exec', '-n', 'switchyard-system', agentOn(n.name), '-c', 'interceptor', '--', 'switchyard', 'status', 'services', '-o', 'json']));
      return s.services.some((x: { service: string; backends: unknown[] }) => x.service === 'demo/app-b' && x.backends.length === 2) ? true : undefined;
    });
  }

  say();
  say(`7. Requests from app-a (on ${aNode}) to app-b, through both sidecars`);
  const get = (url: string) => c.kubectl(['exec', '-n', 'demo', podA.metadata!.name!, '-c', 'app', '--', 'http-get', url]).trim();
  const viaService = [get(`http://${clusterIP}/`), get(`http://${clusterIP}/`)];
  const viaPod = [sameB, otherB].filter((p): p is V1Pod => !!p).map((p) => get(`http://${p.status!.podIP}:8080/`));
  say(`   $ kubectl exec -n demo ${podA.metadata!.name} -c app -- http-get URL   (the Service's ClusterIP ${clusterIP} twice, then app-b's pod IPs${otherB ? ': same node, other node' : ''})`);
  say(indent([...viaService, ...viaPod].join('\n'), 5));
  say(`   app-a's sidecar (outbound: the kernel sent app-a's connects to 127.0.0.1:15001, the proxy asked SO_ORIGINAL_DST):`);
  say(shown(c, ['logs', '-n', 'demo', podA.metadata!.name!, '-c', 'switchyard-proxy'], 5));
  for (const b of podsB) {
    say(`   ${b.metadata!.name} on ${b.spec!.nodeName}, its sidecar (inbound at :15003):`);
    say(shown(c, ['logs', '-n', 'demo', b.metadata!.name!, '-c', 'switchyard-proxy'], 5));
  }
  for (const n of c.nodeList) {
    say(`   BPF state on ${n.name}:`);
    say(shown(c, ['exec', '-n', 'switchyard-system', agentOn(n.name), '-c', 'interceptor', '--', 'switchyard', 'status'], 5));
  }
  say(shown(c, ['exec', '-n', 'switchyard-system', agentOn(aNode), '-c', 'interceptor', '--', 'switchyard', 'status', 'services'], 3));
  const describe = c.kubectl(['describe', 'pod', '-n', 'demo', podA.metadata!.name!]);
  say(`   $ kubectl describe pod -n demo ${podA.metadata!.name}   (its Events)`);
  say(indent(describe.slice(describe.indexOf('Events:')), 5));

  say();
  say("8. From outside the cluster: app-b's NodePort on each node, DSR (the lab's overlay turns node frontends on)");
  const outside = c.nodes.addOutsideHost();
  const nodePort: number = svc.spec.ports[0].nodePort;
  for (const n of c.nodeList) {
    await eventually(`the interceptor on ${n.name} to serve app-b's NodePort`, () => {
      const s = JSON.parse(c.kubectl(['exec', '-n', 'switchyard-system', agentOn(n.name), '-c', 'interceptor', '--', 'switchyard', 'status', 'services', '-o', 'json']));
      return (s.nodeFrontends ?? []).some((x: { service: string; frontend: string }) => x.service === 'demo/app-b' && x.frontend === `${n.ip}:${nodePort}/TCP`) ? true : undefined;
    });
  }
  say(`   $ curl http://NODE:${nodePort}/   (from ${outside.ip}, a host on the nodes' segment with no route to pods)`);
  const fromOutside = c.nodeList.flatMap((n) => [1, 2].map(() => `${n.name} ${n.ip}:${nodePort} → ${shownAnswer(outside.get(`http://${n.ip}:${nodePort}/`))}`));
  say(indent(fromOutside.join('\n'), 5));
  say(`   app-b's sidecars saw the outside client's own address (${outside.ip}), not a node's: the ingress node passed the Service address in an IP option and the backend's node answered the client directly`);
  for (const b of podsB) {
    const lines = c.kubectl(['logs', '-n', 'demo', b.metadata!.name!, '-c', 'switchyard-proxy']).split('\n').filter((l) => l.includes(`src=${outside.ip}:`));
    say(`     $ kubectl logs -n demo ${b.metadata!.name} -c switchyard-proxy | grep src=${outside.ip}`);
    say(indent(lines.join('\n') || '(none: the ingress nodes sent these requests to the other replica)', 7));
  }
  say(`   the node frontends and their counters (dsr: options added; replies_rewritten: answered from the Service address), on ${aNode}:`);
  say(shown(c, ['exec', '-n', 'switchyard-system', agentOn(aNode), '-c', 'interceptor', '--', 'switchyard', 'status', 'services'], 5));

  say();
  say('9. The same story with kubectl alone: the kubectl-switchyard plugin (cli/README.md), through the apiserver');
  say(plugin(c, ['check']));
  say(plugin(c, ['check-inject', podA.metadata!.name!, '-n', 'demo']));

  say();
  say('10. Summary');
  say(`   images ${secs(c.timings.imagesMs)}; control plane ${secs(c.timings.controlPlaneMs)}; ${c.nodeList.length} nodes ${secs(c.timings.nodesMs)}; install ${secs(c.timings.installMs)}`);
  say(`   3 pods injected by the webhook (a Deployment behind its Service), registered by the interceptor (a DaemonSet) during CNI ADD, Ready ${secs(tReady)} after kubectl apply`);
  say(`   app-a → app-b: ${viaService.length} requests via the Service (socket-level load balancing) and ${viaPod.length} via pod IPs, each through app-a's and app-b's sidecars`);
  say(`   outside → app-b: ${fromOutside.length} requests to its NodePort on both nodes (DSR), the client's address kept`);
  say(`   total ${secs(Date.now() - t0)}`);
  if (keep) {
    say();
    say('The cluster keeps running; Ctrl-C removes it. Try:');
    say(`   ${path.join(k8sBinDir(), 'kubectl')} --kubeconfig ${c.cp.kubeconfig} get pods -A -o wide`);
    say(`   … logs -n demo ${podsB[0].metadata!.name} -c switchyard-proxy`);
    say(`   … exec -n switchyard-system ${agentOn(node0)} -c interceptor -- switchyard status`);
    say(`   node logs (containerd, kubelet, kube-proxy): ${c.dir}/nodes/<node>/log/`);
    await new Promise(() => undefined);
  }
  say();
  say('Teardown: nodes stopped (every container with them), control plane stopped, netns, cgroups and node directories removed.');
  await c.stop();
}

let current: RealCluster | undefined;
let stopping = false;
async function teardownAndExit(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await current?.stop().catch((e: Error) => process.stderr.write(`${e.message}\n`));
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: removing the lab\n`);
    void teardownAndExit(130);
  });
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    if (stopping) return; // Ctrl-C pulled the lab from under the steps: not a failure to report
    process.stderr.write(`\nthe demo failed: ${e.message}\n`);
    if (current) process.stderr.write(`${current.lastNodeLogLines()}\n`);
    void teardownAndExit(1);
  },
);
