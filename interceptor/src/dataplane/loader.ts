/**
 * The dataplane's pins over their life: load (check the host, load every
 * object, pin, attach, record the ABI), adopt (pins of this agent's version),
 * open (what the agent does at start: recover an interrupted upgrade, then
 * load, adopt or upgrade in place) and remove (the cleanup command). The
 * pin layout is in layout.ts; a Dataplane is the handle over loaded pins.
 */
import * as fs from 'fs';
import * as path from 'path';
import { bpfObjectDir, native } from '../../../native';
import { ABI_VERSION, Phase, writeAbiRecord } from './abi-record';
import { MapSizes, validateMapSizes } from './config';
import { DataplaneError } from './errors';
import { FeatureProbe, HostError, OrigdstHandoff, cgroupLevel, checkKernelFeatures, ensureBpffs, findCgroup2Mount, origdstHandoff } from './host';
import { DEFAULT_PIN_ROOT, MAPS, NEXT_DIR, OBJECTS, OLD_DIR, PROGRAMS, buildId, objectFile, pinExists } from './layout';
import { UpgradeRefused } from './migrate';
import { UpgradeOptions, UpgradeResult, pinnedVersion, recoverUpgrade, removePinTree, upgradeDataplane, upgradePlan } from './upgrade';

export interface DataplaneOptions {
  /** cgroup2 directory whose subtree is intercepted (in Kubernetes: the kubepods cgroup). */
  cgroupPath: string;
  pinRoot?: string;
  objectDir?: string;
  mapSizes?: Partial<MapSizes>;
  /** Attaching at the cgroup2 root intercepts the whole machine; it must be asked for. */
  allowRootCgroup?: boolean;
  /** How kernel features are detected; the default asks the kernel. */
  probe?: FeatureProbe;
  /**
   * Splice pod↔sidecar sockets through the sockmap (sk_msg). On by default;
   * off leaves the TCP loopback path, e.g. to compare or to rule it out.
   */
  sockmapAcceleration?: boolean;
  /** Force the connect → sock_ops hand-off of the original destination; by default the kernel decides (host.ts). */
  origdstHandoff?: OrigdstHandoff;
}

export type OpenOptions = DataplaneOptions & Pick<UpgradeOptions, 'tcTargets' | 'onStep' | 'onPoint'>;

/** Where loaded pins are, and the cgroup their links attach to. */
export interface Pinned {
  pinRoot: string;
  cgroupPath: string;
}

export interface Opened {
  outcome: 'loaded' | 'adopted' | 'upgraded';
  recovery: ReturnType<typeof recoverUpgrade>;
  upgrade?: UpgradeResult;
}

const exists = pinExists;

/**
 * Checks the host, loads every object, pins and attaches. Either all of it
 * happens or none of it: a failure part-way removes what was done.
 */
export function loadPins(opts: DataplaneOptions): Pinned {
  const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
  const objectDir = opts.objectDir ?? bpfObjectDir();
  const sizes = validateMapSizes(opts.mapSizes ?? {});
  const cgroupPath = checkCgroup(opts);
  const handoff = opts.origdstHandoff ?? origdstHandoff(opts.probe);
  for (const obj of OBJECTS) {
    const file = objectFile(objectDir, obj, handoff);
    if (!exists(file)) throw new DataplaneError(`BPF object ${file} is missing: build it with 'make bpf'`);
  }
  checkKernelFeatures(opts.probe);
  ensureBpffs(pinRoot);
  if (exists(pinRoot) && fs.readdirSync(pinRoot).length > 0) {
    throw new DataplaneError(
      `${pinRoot} already holds a Switchyard dataplane: adopt it (Dataplane.adopt) or remove it first ('switchyard-interceptor cleanup')`,
    );
  }

  try {
    fs.mkdirSync(path.join(pinRoot, 'progs'), { recursive: true });
    fs.mkdirSync(path.join(pinRoot, 'links'), { recursive: true });
    const n = native();
    for (const obj of OBJECTS) {
      n.loadObject(objectFile(objectDir, obj, handoff), pinRoot, path.join(pinRoot, 'progs'), { ...sizes });
    }
    for (const p of PROGRAMS) {
      const progPin = path.join(pinRoot, 'progs', p.name);
      if ('cgroupHook' in p) n.attachCgroup(progPin, cgroupPath, p.cgroupHook, path.join(pinRoot, 'links', p.cgroupHook));
      if ('skMsgMap' in p && opts.sockmapAcceleration !== false) n.attachSkMsg(progPin, path.join(pinRoot, p.skMsgMap));
    }
    writeAbiRecord(path.join(pinRoot, 'sy_abi'), { version: ABI_VERSION, from: ABI_VERSION, phase: Phase.Live, build: buildId(objectDir, handoff) });
    return { pinRoot, cgroupPath };
  } catch (e) {
    removePins(pinRoot);
    if (e instanceof HostError || e instanceof DataplaneError) throw e;
    throw new DataplaneError(`loading the dataplane failed and was rolled back: ${(e as Error).message}`, e);
  }
}

/** Checks that pins of this agent's ABI version are whole, to take them over without touching traffic. */
export function adoptPins(opts: { pinRoot?: string; cgroupPath: string }): Pinned {
  const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
  if (exists(path.join(pinRoot, NEXT_DIR))) {
    throw new DataplaneError(`cannot adopt the dataplane at ${pinRoot}: an upgrade is in progress there; start the agent, which finishes it`);
  }
  const version = exists(path.join(pinRoot, 'sy_pods')) ? pinnedVersion(pinRoot) : ABI_VERSION;
  if (version !== ABI_VERSION) {
    throw new DataplaneError(
      `cannot adopt the dataplane at ${pinRoot}: its maps follow BPF ABI version ${version}, this agent's ${ABI_VERSION}; ` +
        (version < ABI_VERSION ? 'start the agent, which upgrades it in place' : 'run an agent of that version or later'),
    );
  }
  const missing = [
    ...MAPS.map((m) => path.join(pinRoot, m)),
    ...PROGRAMS.map((p) => path.join(pinRoot, 'progs', p.name)),
    ...PROGRAMS.flatMap((p) => ('cgroupHook' in p ? [path.join(pinRoot, 'links', p.cgroupHook)] : [])),
  ].filter((p) => !exists(p));
  if (missing.length) {
    throw new DataplaneError(
      `cannot adopt the dataplane at ${pinRoot}: ${missing.length} pins are missing (${missing.slice(0, 3).join(', ')}...). ` +
        `Remove the remains with 'switchyard-interceptor cleanup' and load again`,
    );
  }
  return { pinRoot, cgroupPath: opts.cgroupPath };
}

/**
 * What the agent does at start: finish or roll back an upgrade a dead
 * agent left, then load (nothing pinned), adopt (the same build is
 * pinned) or upgrade in place (another build, ABI version or map sizes).
 */
export function openPins(opts: OpenOptions): Pinned & Opened {
  const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
  const objectDir = opts.objectDir ?? bpfObjectDir();
  const handoff = opts.origdstHandoff ?? origdstHandoff(opts.probe);
  ensureBpffs(pinRoot);
  const up: UpgradeOptions = {
    pinRoot,
    objectDir,
    handoff,
    mapSizes: { ...validateMapSizes(opts.mapSizes ?? {}) },
    cgroupPath: checkCgroup(opts),
    sockmapAcceleration: opts.sockmapAcceleration !== false,
    tcTargets: opts.tcTargets,
    onStep: opts.onStep,
    onPoint: opts.onPoint,
  };
  try {
    const recovery = exists(pinRoot) ? recoverUpgrade(up) : 'none';
    if (!isLoaded(pinRoot)) return { ...loadPins({ ...opts, origdstHandoff: handoff }), outcome: 'loaded', recovery };
    const plan = upgradePlan(up);
    if (!plan.needed) return { pinRoot, cgroupPath: up.cgroupPath, outcome: 'adopted', recovery };
    checkKernelFeatures(opts.probe);
    const upgrade = upgradeDataplane(up, plan);
    return { pinRoot, cgroupPath: up.cgroupPath, outcome: 'upgraded', recovery, upgrade };
  } catch (e) {
    if (e instanceof UpgradeRefused || e instanceof DataplaneError || e instanceof HostError) throw e;
    throw new DataplaneError(`upgrading the dataplane at ${pinRoot} failed: ${(e as Error).message}; start the agent again to resume or roll back`, e);
  }
}

/** True when pins of a dataplane exist under pinRoot. */
export function isLoaded(pinRoot = DEFAULT_PIN_ROOT): boolean {
  return exists(path.join(pinRoot, 'sy_pods'));
}

function checkCgroup(opts: DataplaneOptions): string {
  const mount = findCgroup2Mount();
  const cgroupPath = path.resolve(opts.cgroupPath);
  if (!fs.existsSync(cgroupPath)) throw new DataplaneError(`cgroup ${cgroupPath} does not exist`);
  if (cgroupLevel(cgroupPath, mount) === 0 && !opts.allowRootCgroup) {
    throw new DataplaneError(
      `refusing to attach to the cgroup2 root ${mount}: that intercepts every process on the machine. ` +
        'Point cgroupPath at the pods\' parent cgroup (e.g. kubepods), or set allowRootCgroup',
    );
  }
  return cgroupPath;
}

/**
 * Detaches and unpins everything under pinRoot. Idempotent; works without a
 * live agent. tc filters on pod interfaces are not pins: unload() removes
 * those of the agent's own pods, and the 'cleanup' command
 * (agent/node-cleanup.ts) those of every pod on the node.
 */
export function removePins(pinRoot = DEFAULT_PIN_ROOT): void {
  const n = native();
  const linkDir = path.join(pinRoot, 'links');
  // Detach first (synchronous), then unpin: unpinning alone releases the link later, from a workqueue.
  if (exists(linkDir)) {
    for (const l of fs.readdirSync(linkDir)) {
      n.detachLink(path.join(linkDir, l));
      fs.unlinkSync(path.join(linkDir, l));
    }
  }
  // An interrupted upgrade may have attached its staged sk_msg program too.
  for (const p of PROGRAMS) {
    if (!('skMsgMap' in p)) continue;
    for (const dir of [pinRoot, path.join(pinRoot, NEXT_DIR)]) {
      const mapPin = path.join(dir, p.skMsgMap);
      for (const progPin of [path.join(pinRoot, 'progs', p.name), path.join(pinRoot, NEXT_DIR, 'progs', p.name)]) {
        if (exists(progPin) && exists(mapPin)) n.detachSkMsg(progPin, mapPin);
      }
    }
  }
  removePinTree(path.join(pinRoot, NEXT_DIR));
  removePinTree(path.join(pinRoot, OLD_DIR));
  for (const dir of [path.join(pinRoot, 'progs'), linkDir]) {
    if (!exists(dir)) continue;
    for (const f of fs.readdirSync(dir)) fs.unlinkSync(path.join(dir, f));
    fs.rmdirSync(dir);
  }
  if (exists(pinRoot)) {
    for (const f of fs.readdirSync(pinRoot)) fs.unlinkSync(path.join(pinRoot, f));
    fs.rmdirSync(pinRoot);
  }
}
