#!/usr/bin/env node
/**
 * switchyard-interceptor: the node agent.
 *
 *   switchyard-interceptor run --config FILE      start (or adopt) the dataplane and serve
 *   switchyard-interceptor cleanup [--config FILE] [--pin-root DIR] [--state-dir DIR] [--netns-dir DIR]
 *                                                 remove every attachment, tc filter and pin
 *   switchyard-interceptor install-cni --bin-src FILE [--conf-dir D] [--bin-dir D] [--settings JSON]
 *   switchyard-interceptor uninstall-cni [--conf-dir D] [--bin-dir D]
 *                                                 chain switchyard-cni after the main plugin, or remove it
 *
 * Start-up: validate the config, check kernel features, find cgroup2, mount
 * bpffs if needed, load+pin+attach or adopt existing pins, open the unix
 * socket, start the node-scoped pod informer, reconcile, report ready.
 */
import * as fs from 'fs';
import { ConfigError } from '../../../api/interception';
import { KubeClient } from '../../../lib/kube/client';
import { KubeConfigError, loadKubeConfig } from '../../../lib/kube/config';
import { apiEventSink } from '../../../lib/kube/event-sink';
import { Dataplane } from '../dataplane/dataplane';
import { HostError } from '../dataplane/host';
import { stdoutLogger as log } from '../../../lib/log';
import { failpoint } from '../../../lib/failpoint';
import { AgentConfig, NodePortSettings, loadAgentConfig } from './config';
import { HealthCheckServer } from '../lb/health';
import * as os from 'os';
import { resolveCgroupPath } from './cgroup-path';
import { cleanupNode } from './node-cleanup';
import { EventRecorder } from '../../../lib/events';
import { CniInstallError, installCni, uninstallCni } from './cni-install';
import { AgentMetrics } from './metrics';
import { PodCache } from './pods';
import { ServiceLoadBalancer } from '../lb/controller';
import { Registrar } from './registrar';
import { agentApi, listenMetrics, listenUnix } from './server';
import { DecisionMonitor } from './monitor';
import { nodeReport } from './node-report';
import { RecordStore } from './state';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function run(cfg: AgentConfig): Promise<void> {
  const started = Date.now();
  const store = new RecordStore(cfg.stateDir);
  const opened = Dataplane.open({
    cgroupPath: cfg.cgroupPath,
    pinRoot: cfg.pinRoot,
    mapSizes: cfg.mapSizes,
    allowRootCgroup: cfg.allowRootCgroup,
    sockmapAcceleration: cfg.sockmapAcceleration,
    // Pod interfaces whose tc filters an upgrade swaps: the registrations this node holds.
    tcTargets: store.all().map((r) => ({ netnsPath: r.netnsPath, ifname: r.ifname })),
    onStep: (step, fields) => log('info', 'dataplane upgrade step', { step, ...fields }),
    onPoint: failpoint,
  });
  const dp = opened.dp;
  if (opened.recovery !== 'none') log('warn', `an interrupted dataplane upgrade was ${opened.recovery === 'resumed' ? 'finished' : 'rolled back'}`, { pin_root: cfg.pinRoot });
  if (opened.outcome === 'adopted') {
    log('info', 'adopted the pinned dataplane; traffic was never interrupted', { pin_root: cfg.pinRoot, origdst_handoff: dp.handoff });
  } else if (opened.outcome === 'upgraded') {
    const u = opened.upgrade!;
    log('info', 'upgraded the pinned dataplane in place; traffic was never interrupted', {
      pin_root: cfg.pinRoot,
      abi_from: u.from,
      abi_to: u.to,
      maps: u.maps.filter((m) => m.action !== 'share').map((m) => `${m.name}:${m.action}`).join(' ') || 'all shared',
      tc_filters_swapped: u.tcSwapped,
      origdst_handoff: dp.handoff,
    });
  } else {
    log('info', 'loaded and attached the dataplane', { pin_root: cfg.pinRoot, cgroup: cfg.cgroupPath, sockmap_acceleration: cfg.sockmapAcceleration, origdst_handoff: dp.handoff });
  }
  const metrics = new AgentMetrics(() => dp, store);
  const kube = new KubeClient(loadKubeConfig(cfg.kubeconfig), 'switchyard-interceptor');
  const pods = new PodCache(kube, cfg.nodeName, (e) => log('warn', 'pod watch failed; retrying', { error: e.message }));
  const events = new EventRecorder(
    apiEventSink(kube),
    { controller: 'switchyard.dev/interceptor', instance: cfg.nodeName, onError: (e) => log('warn', 'event not recorded', { error: e.message }) },
  );
  const registrar = new Registrar(cfg, dp, pods, store, metrics, log, events);

  const nodePort = cfg.nodePort ? startNodeFrontends(cfg.nodePort, dp) : undefined;
  const lb = cfg.serviceLoadBalancing
    ? new ServiceLoadBalancer(kube, dp, log, (e) => log('warn', 'service watch failed; retrying', { error: e.message }), {
        nodeName: cfg.nodeName,
        ...(nodePort ? { nodePort } : {}),
      })
    : undefined;
  metrics.watchServices(() => lb?.status() ?? []);

  // Nobody watches a new agent: reporting an earlier one left on goes off.
  const monitor = new DecisionMonitor(dp, store, cfg.nodeName);
  monitor.stop();

  let ready = false;
  const api = await listenUnix(agentApi(registrar, store, dp, () => lb?.status(), monitor, () => nodeReport(cfg.nodeName, cfg.pinRoot, cfg.cniConfDir, dp, monitor), () => (nodePort ? lb?.nodeStatus() : undefined)), cfg.socketPath);
  const m = await listenMetrics(metrics, () => ready, cfg.metricsHost, cfg.metricsPort);
  await pods.start();
  // Service load balancing syncs in the background: pod registration (CNI ADD) never waits on it.
  lb?.start().then(
    () => log('info', 'service load balancing synced', { frontends: lb.status().length }),
    (e: Error) => log('error', 'service load balancing failed to start', { error: e.message }),
  );
  pods.on('upsert', (p) => registrar.onPodUpsert(p));
  pods.on('delete', (p) => registrar.onPodDelete(p));
  const r = registrar.reconcile();
  ready = true;
  log('info', 'interceptor ready', {
    node: cfg.nodeName,
    socket: cfg.socketPath,
    metrics_port: m.port,
    registered: store.all().length,
    service_load_balancing: cfg.serviceLoadBalancing,
    service_frontends: lb?.status().length,
    reregistered: r.reregistered,
    removed_stale: r.removed,
    updated: r.updated,
    startup_ms: Date.now() - started,
  });
  process.stdout.write(JSON.stringify({ event: 'ready', metricsPort: m.port, socket: cfg.socketPath }) + '\n');

  // Periodic reconcile catches what a missed watch event would leave behind.
  const timer = setInterval(() => registrar.reconcile(), 30_000);
  const stop = () => {
    clearInterval(timer);
    monitor.stop();
    // Pins stay: the programs keep redirecting until the next agent adopts them.
    pods.stop();
    lb?.stop();
    void nodePort?.health.close();
    kube.close();
    void Promise.all([new Promise((r) => api.close(r)), new Promise((r) => m.server.close(r))]).then(() => {
      dp.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * Node frontends: the node's snat settings, then sy_nodeport on each device
 * (atomically replacing an earlier agent's filter, so an upgrade's new
 * program takes over here too), and the healthCheckNodePort server.
 */
function startNodeFrontends(np: NodePortSettings, dp: Dataplane): { mode: NodePortSettings['mode']; addresses: string[]; health: HealthCheckServer } {
  const ifaces = os.networkInterfaces();
  const addresses = np.addresses ?? np.devices.flatMap((d) => (ifaces[d] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));
  if (!addresses.length) throw new ConfigError('agent configuration', [`nodePort: no IPv4 address on ${np.devices.join(', ')}; set nodePort.addresses`]);
  dp.setNodePortConfig({ snatAddress: addresses[0], snatPortMin: np.snatPortMin, snatPortMax: np.snatPortMax, snatClosedGraceSeconds: np.snatClosedGraceSeconds, snatTimeWaitSeconds: np.snatTimeWaitSeconds });
  for (const ifname of np.devices) dp.attachNodeDevice({ netnsPath: '/proc/self/ns/net', ifname });
  log('info', 'node frontends on', { mode: np.mode, devices: np.devices.join(','), addresses: addresses.join(','), snat_source: `${addresses[0]}:${np.snatPortMin}-${np.snatPortMax}` });
  return { mode: np.mode, addresses, health: new HealthCheckServer(log) };
}

async function main(): Promise<void> {
  const cmd = process.argv[2];
  if (cmd === 'cleanup') {
    const cfg = arg('config') ? loadAgentConfig(arg('config')!) : undefined;
    const pinRoot = arg('pin-root') ?? cfg?.pinRoot;
    const r = cleanupNode({ pinRoot, stateDir: arg('state-dir') ?? cfg?.stateDir, netnsDir: arg('netns-dir'), nodeDevices: cfg?.nodePort?.devices });
    log('info', 'removed every Switchyard tc filter, attachment and pin', {
      pin_root: pinRoot ?? '/sys/fs/bpf/switchyard',
      tc_filters: r.filters,
      qdiscs: r.qdiscs,
      interfaces_checked: r.interfaces,
    });
    return;
  }
  if (cmd === 'install-cni' || cmd === 'uninstall-cni') {
    const confDir = arg('conf-dir') ?? '/etc/cni/net.d';
    const binDir = arg('bin-dir') ?? '/opt/cni/bin';
    if (cmd === 'uninstall-cni') {
      const r = uninstallCni({ confDir, binDir });
      log('info', 'switchyard-cni removed from the CNI configuration', { file: r.file, action: r.action, bin_dir: binDir });
      return;
    }
    let settings: Record<string, unknown> = {};
    try {
      settings = JSON.parse(arg('settings') ?? '{}');
    } catch (e) {
      throw new CniInstallError(`--settings must be a JSON object: ${(e as Error).message}`);
    }
    const r = installCni({ confDir, binDir, binSource: arg('bin-src'), settings });
    log('info', 'switchyard-cni installed in the CNI configuration', { file: r.file, action: r.action, bin_dir: binDir });
    return;
  }
  if (cmd !== 'run') throw new ConfigError('command line', [`unknown command '${cmd ?? ''}': use 'run --config FILE', 'cleanup', 'install-cni' or 'uninstall-cni'`]);
  const file = arg('config');
  if (!file || !fs.existsSync(file)) throw new ConfigError('command line', [`--config FILE is required and must exist (got ${file ?? 'nothing'})`]);
  await run(resolveCgroupPath(loadAgentConfig(file)));
}

main().catch((e: Error) => {
  const known = e instanceof ConfigError || e instanceof HostError || e instanceof KubeConfigError || e instanceof CniInstallError || e.name === 'DataplaneError' || e.name === 'UpgradeRefused';
  log('error', 'interceptor cannot start', { error: e.message });
  if (!known) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
