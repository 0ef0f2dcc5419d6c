#!/usr/bin/env node
/**
 * The main job: Switchyard on a local single-node Kubernetes cluster.
 *
 *   1. start the lab (./cluster.ts)          5. show the sidecar, the label, the registration
 *   2. apply the manifests' API objects      6. app-a → app-b through both sidecars
 *   3. label a namespace                     7. summary, teardown
 *   4. two Deployments and a Service (lab/demo/apps.yaml)
 *
 *   node dist/lab/src/demo.js [--keep]
 *
 * --keep leaves the lab running after step 7 (kubectl, `switchyard logs`,
 * `switchyard status` work against it) until Ctrl-C. Ctrl-C at any point
 * removes everything the demo made; a second run starts from nothing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { run as cli } from '../../cli/main';
import { projectRoot } from '../../native';
import { sweepStaleLabs } from './netlab';
import { eventually } from './proc';
import { LAB_IMAGES } from './images';
import { K8S_VERSION, controlPlaneMissing, k8sBinDir } from './controlplane';
import { LabCluster } from './cluster';
import { activeConfig } from '../../interceptor/src/agent/cni-install';
import type { ServiceStatus } from '../../interceptor/src/lb/controller';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { PodEvidence, describeNotReady } from './diagnose';

const keep = process.argv.includes('--keep');
const t0 = Date.now();
const say = (s = '') => process.stdout.write(`${s}\n`);
const indent = (s: string, n = 3) => s.trimEnd().split('\n').map((l) => `${' '.repeat(n)}${l}`).join('\n');
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** What `kubectl describe pod` and `kubectl logs` would show for the pods of ns that are not Ready. */
async function whyNotReady(lab: LabCluster, ns: string): Promise<string> {
  const pods = JSON.parse(lab.kubectl(['get', 'pods', '-n', ns, '-o', 'json'])).items as V1Pod[];
  const events = JSON.parse(lab.kubectl(['get', 'events', '-n', ns, '-o', 'json'])).items as CoreV1Event[];
  const evidence: PodEvidence[] = [];
  for (const pod of pods) {
    const logs: Record<string, string[]> = {};
    for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      logs[c.name] = await sw(['logs', pod.metadata!.name!, '-n', ns, '-c', c.name]).then(
        (t) => t.trimEnd().split('\n').slice(-40),
        () => [],
      );
    }
    evidence.push({ pod, events: events.filter((e) => e.involvedObject.name === pod.metadata?.name), logs });
  }
  return describeNotReady(evidence);
}

async function sw(args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await cli(args, (s) => (out += s), (s) => (err += s));
  if (code !== 0) throw new Error(`switchyard ${args.join(' ')} failed: ${err.trim()}`);
  return out;
}

async function main(): Promise<void> {
  const missing = controlPlaneMissing();
  if (missing) throw new Error(`the lab cannot start: ${missing}`);
  const stale = sweepStaleLabs();
  if (stale.length) say(`(removed leftovers of an earlier run: ${stale.length} items)`);

  const lab = new LabCluster();
  current = lab;

  say(`Switchyard lab: a real Kubernetes ${K8S_VERSION} control plane, this machine as its only node, and the eBPF dataplane.`);
  say();
  say('1. Start the lab');
  await lab.startControlPlane();
  say(`   etcd, kube-apiserver, kube-controller-manager, kube-scheduler (binaries from ${k8sBinDir()})   ${secs(lab.timings.controlPlaneMs)}`);
  say(`   apiserver ${lab.cp.url}; kubeconfig ${lab.cp.kubeconfig}`);

  say();
  say('2. Apply the manifests\' API objects (kubectl kustomize manifests/ | kubectl apply -f -)');
  await lab.applyManifests();
  say(indent(lab.applied.join('\n'), 3));
  await lab.startSwitchyard();
  say(`   run by the lab as processes instead (there is no container runtime): ${lab.skipped.join(', ')}`);
  say(`   switchyard-webhook      https://127.0.0.1:${lab.webhookPort}/mutate (the MutatingWebhookConfiguration's clientConfig.url), token of ServiceAccount switchyard-webhook`);
  say(`   switchyard-interceptor  BPF attached to ${lab.netlab.cgroupRoot}, token of ServiceAccount switchyard-interceptor`);
  const conf = JSON.parse(fs.readFileSync(activeConfig(lab.cniConfDir)!, 'utf8'));
  say(`   install-cni             as the DaemonSet's init container does: ${lab.cniInstall.split('\n').pop()!.replace(/^time=\S+ level=\S+ /, '')}`);
  say(`   lab node                ${lab.node.name}, pods in 10.244.0.0/24 on bridge cni0; CNI: loopback, then ${conf.plugins.map((p: { type: string }) => p.type).join(' → ')}`);

  say();
  say('3. Label a namespace for injection');
  lab.kubectl(['create', 'namespace', 'demo']);
  say(indent(`$ kubectl label namespace demo switchyard.dev/injection=enabled\n${lab.kubectl(['label', 'namespace', 'demo', 'switchyard.dev/injection=enabled'])}`));

  say();
  say('4. Apply two Deployments and a Service (lab/demo/apps.yaml)');
  const apps = path.join(projectRoot(), 'lab', 'demo', 'apps.yaml');
  say(indent(`$ kubectl apply -f lab/demo/apps.yaml\n${lab.kubectl(['apply', '-f', apps])}`));
  say(`   (images are not pulled: ${Object.keys(LAB_IMAGES).join(', ')} map to programs on this machine)`);
  const tApplied = Date.now();
  const podsReady = async () => {
    const list = JSON.parse(lab!.kubectl(['get', 'pods', '-n', 'demo', '-o', 'json'])).items as any[];
    const ready = list.filter((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    return ready.length === 3 ? ready : undefined;
  };
  const pods = await eventually('3 Ready pods in namespace demo', podsReady, 120_000).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await whyNotReady(lab!, 'demo')}`);
  });
  const tReady = Date.now() - tApplied;
  const podA = pods.find((p) => p.metadata.labels.app === 'app-a');
  const podsB = pods.filter((p) => p.metadata.labels.app === 'app-b');

  say();
  say(`5. The pods got the sidecar and the managed label, and the interceptor registered them (Ready ${secs(tReady)} after apply)`);
  say(indent(`$ kubectl get pods -n demo -o wide\n${lab.kubectl(['get', 'pods', '-n', 'demo', '-o', 'wide'])}`));
  for (const p of pods) {
    const init = (p.spec.initContainers ?? []).map((c: any) => `${c.name} (init, restartPolicy ${c.restartPolicy ?? '-'})`);
    say(`   ${p.metadata.name}: containers ${[...init, ...p.spec.containers.map((c: any) => c.name)].join(', ')}; label switchyard.dev/managed=${p.metadata.labels['switchyard.dev/managed']}`);
  }
  say('   webhook decisions (re-invocations, which find the sidecar already there, are in its log too):');
  say(indent(lab.webhook!.lines.filter((l) => l.includes('namespace=demo') && l.includes('msg="pod injected"')).join('\n'), 5));
  say('   interceptor decisions:');
  say(indent(lab.agent!.lines.filter((l) => l.includes('pod=demo/') && l.includes('registered')).join('\n'), 5));
  say(indent(`$ switchyard status\n${await sw(['status', '--socket', lab.agentSocket])}`));

  // Ready means started; wait for the apps to say they listen (and the sidecars have answered their probes).
  for (const p of pods) await eventually(`${p.metadata.name} to listen`, async () => ((await sw(['logs', p.metadata.name, '-n', 'demo', '-c', 'app'])).includes('listening on') ? true : undefined));
  const svc = JSON.parse(lab.kubectl(['get', 'service', 'app-b', '-n', 'demo', '-o', 'json']));
  const clusterIP: string = svc.spec.clusterIP;
  await eventually("the interceptor to program app-b's 2 backends", async () => {
    const s = JSON.parse(await sw(['status', 'services', '-o', 'json', '--socket', lab.agentSocket])) as { services: ServiceStatus[] };
    return s.services.some((x) => x.service === 'demo/app-b' && x.backends.length === 2) ? true : undefined;
  });

  say();
  say('6. A request from app-a to app-b, through both sidecars');
  const get = async (url: string) => {
    const r = await lab!.node.exec('demo', podA.metadata.name, 'app', [...LAB_IMAGES['switchyard-lab/http-get'].entrypoint, url]);
    if (r.code !== 0) throw new Error(`http-get ${url} in ${podA.metadata.name} failed: ${r.output}`);
    return r.output.trim();
  };
  const viaService = [await get(`http://${clusterIP}/`), await get(`http://${clusterIP}/`)];
  const viaPod = await get(`http://${podsB[0].status.podIP}:8080/`);
  say(`   $ kubectl exec ${podA.metadata.name} -c app -- http-get http://app-b (ClusterIP ${clusterIP}), twice, then the pod IP`);
  say(indent([...viaService, viaPod].join('\n'), 5));
  say(`   app-a's sidecar (outbound; the kernel sent app-a's connect to 127.0.0.1:15001, the proxy asked SO_ORIGINAL_DST):`);
  say(indent(`$ switchyard logs ${podA.metadata.name} -n demo -c switchyard-proxy\n${await sw(['logs', podA.metadata.name, '-n', 'demo', '-c', 'switchyard-proxy'])}`, 5));
  for (const b of podsB) {
    say(`   ${b.metadata.name}'s sidecar (inbound at :15003):`);
    say(indent(`$ switchyard logs ${b.metadata.name} -n demo -c switchyard-proxy\n${await sw(['logs', b.metadata.name, '-n', 'demo', '-c', 'switchyard-proxy'])}`, 5));
  }
  say('   BPF counters (same-node inbound is rewritten at app-a\'s connect, so app-b counts no tc inbound):');
  say(indent(`$ switchyard status\n${await sw(['status', '--socket', lab.agentSocket])}`, 5));
  say(indent(`$ switchyard status services\n${await sw(['status', 'services', '--socket', lab.agentSocket])}`, 5));
  say('     (kubernetes and switchyard-webhook have no backends here: the apiserver and the webhook listen on the host\'s loopback, which pods cannot reach)');

  say();
  say('7. Summary');
  say(`   control plane up in ${secs(lab.timings.controlPlaneMs)}; webhook + interceptor ${secs(lab.timings.switchyardMs)}; node ${secs(lab.timings.nodeMs)}`);
  say(`   3 pods injected by the webhook, registered by the interceptor before their containers started, Ready ${secs(tReady)} after kubectl apply`);
  say(`   app-a → app-b: ${viaService.length} requests via the Service (socket-level load balancing, no kube-proxy) and 1 via the pod IP, each through app-a's and app-b's sidecars`);
  say(`   total ${secs(Date.now() - t0)}`);
  if (keep) {
    say();
    say('The lab keeps running; Ctrl-C removes it. Try:');
    say(`   ${path.join(k8sBinDir(), 'kubectl')} --kubeconfig ${lab.cp.kubeconfig} get pods -A -o wide`);
    say(`   node dist/cli/main.js logs ${podsB[0].metadata.name} -n demo -c switchyard-proxy`);
    say(`   node dist/cli/main.js status --socket ${lab.agentSocket}`);
    say(`   logs of the lab's programs: ${lab.dir}/{webhook,interceptor,node}.log`);
    await new Promise(() => undefined);
  }
  say();
  say('Teardown: pods stopped (CNI DEL), programs stopped, control plane stopped, netns/cgroups/pins removed.');
  await lab.stop();
}

let current: LabCluster | undefined;
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
    // What the lab's programs said last, before their logs go with the lab.
    for (const f of ['node.log', 'interceptor.log', 'webhook.log']) {
      const file = current ? path.join(current.dir, f) : '';
      if (file && fs.existsSync(file)) process.stderr.write(`--- last lines of ${f}\n${fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-12).join('\n')}\n`);
    }
    void teardownAndExit(1);
  },
);
