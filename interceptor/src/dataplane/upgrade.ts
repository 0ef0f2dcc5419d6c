/**
 * Upgrading a pinned dataplane in place, with traffic flowing: a new agent
 * whose objects differ from the running ones (another ABI version, another
 * build, other map sizes) swaps its programs in without ever leaving a hook
 * empty, and carries every map across (migrate.ts decides how).
 *
 *   prepare  stage the new objects under <pinRoot>/upgrade-next: unchanged maps
 *            get a second pin there so libbpf reuses them, the others are
 *            created by the load and filled from the old maps. Nothing
 *            attached: a crash here rolls back (remove upgrade-next).
 *            Ends by writing upgrade-next/sy_abi: the journal from here on.
 *   swap     tc filters on every pod interface (atomic replace at the same
 *            handle), then every cgroup link (bpf_link_update: the hook runs
 *            the old program or the new one, never none), then sk_msg.
 *   delta    entries the old programs wrote since prepare; counters added.
 *   commit   renames: the new pins take the old names, the old ones go to
 *            upgrade-old and are removed; upgrade-next/sy_abi becomes <pinRoot>/sy_abi.
 *
 * Each phase is recorded in upgrade-next/sy_abi when it ends and every step is
 * idempotent, so an agent killed anywhere resumes where it stopped (from
 * Prepared on) or rolls back (before). A newer pinned version is refused.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MapInfo, MapSpec, isNativeError, native } from '../../../native';
import { ABI_VERSION, Phase, UNRECORDED_VERSION, readAbiRecord, writeAbiRecord } from './abi-record';
import type { OrigdstHandoff } from './host';
import { NEXT_DIR, OBJECTS, OLD_DIR, PROGRAMS, TC_HANDLE, TC_PRIORITY, buildId, objectFile, pinExists } from './layout';
import { MapPlan, UPGRADERS, UpgradeRefused, addCounters, copyEntries, isCopyable, planMaps } from './migrate';

export interface UpgradeOptions {
  pinRoot: string;
  objectDir: string;
  handoff: OrigdstHandoff;
  mapSizes: Record<string, number>;
  cgroupPath: string;
  sockmapAcceleration: boolean;
  /** Pod interfaces carrying our tc filters (the agent's registration records). */
  tcTargets: { netnsPath: string; ifname: string }[];
  /** Called as each step starts: for the log, and for tests that kill the agent mid-way. */
  onStep?: (step: string, fields?: Record<string, unknown>) => void;
  /** Called at every point where a crash leaves a distinct state (lib/failpoint.ts). */
  onPoint?: (point: string) => void;
}

export interface UpgradeResult {
  from: number;
  to: number;
  maps: MapPlan[];
  /** tc filters replaced on pod interfaces. */
  tcSwapped: number;
}

const exists = pinExists;

/** Unpins everything under dir (maps, programs, records) and removes it. */
export function removePinTree(dir: string): void {
  if (!exists(dir)) return;
  for (const f of fs.readdirSync(dir)) {
    const p = path.join(dir, f);
    if (fs.lstatSync(p).isDirectory()) removePinTree(p);
    else fs.unlinkSync(p);
  }
  fs.rmdirSync(dir);
}

/** The maps pinned directly under dir (not the record, not the directories). */
function pinnedMaps(dir: string): Map<string, MapInfo> {
  const n = native();
  const out = new Map<string, MapInfo>();
  for (const f of fs.readdirSync(dir)) {
    const p = path.join(dir, f);
    if (f === 'sy_abi' || fs.lstatSync(p).isDirectory()) continue;
    const fd = n.mapOpen(p);
    try {
      out.set(f, n.mapInfo(fd));
    } finally {
      n.closeFd(fd);
    }
  }
  return out;
}

/** The pinned maps the new objects define, once each. */
function newSpecs(o: UpgradeOptions): MapSpec[] {
  const byName = new Map<string, MapSpec>();
  for (const obj of OBJECTS) {
    for (const m of native().objectMaps(objectFile(o.objectDir, obj, o.handoff), o.mapSizes)) if (m.pinned) byName.set(m.name, m);
  }
  return [...byName.values()];
}

function withMaps<T>(a: string, b: string, f: (fa: number, fb: number) => T): T {
  const n = native();
  const fa = n.mapOpen(a);
  try {
    const fb = n.mapOpen(b);
    try {
      return f(fa, fb);
    } finally {
      n.closeFd(fb);
    }
  } finally {
    n.closeFd(fa);
  }
}

const sameMap = (a: string, b: string) => withMaps(a, b, (fa, fb) => native().mapInfo(fa).id === native().mapInfo(fb).id);

/** The pinned ABI version: from the record, or the first version for pins that predate it. */
export function pinnedVersion(pinRoot: string): number {
  return readAbiRecord(path.join(pinRoot, 'sy_abi'))?.version ?? UNRECORDED_VERSION;
}

/**
 * Whether the pinned dataplane differs from what this agent would load, and
 * how its maps would cross. Refuses a newer pinned version (a downgrade)
 * and a map it cannot carry, before anything is touched.
 */
export function upgradePlan(o: UpgradeOptions): { needed: boolean; from: number; maps: MapPlan[] } {
  const rec = readAbiRecord(path.join(o.pinRoot, 'sy_abi'));
  const from = rec?.version ?? UNRECORDED_VERSION;
  if (from > ABI_VERSION) {
    throw new UpgradeRefused(
      `the dataplane pinned at ${o.pinRoot} follows BPF ABI version ${from}, newer than this agent's ${ABI_VERSION}: ` +
        `a downgrade would leave the running programs' maps behind. Run an agent of version ${from} or later, ` +
        `or remove the dataplane with 'switchyard-interceptor cleanup' (interception stops until the next load)`,
    );
  }
  const maps = planMaps(pinnedMaps(o.pinRoot), newSpecs(o), from);
  const needed = !rec || rec.version !== ABI_VERSION || rec.build !== buildId(o.objectDir, o.handoff) || maps.some((m) => m.action !== 'share');
  return { needed, from, maps };
}

/** Finishes an upgrade that a dead agent left under upgrade-next, or rolls it back. */
export function recoverUpgrade(o: UpgradeOptions): 'none' | 'rolled-back' | 'resumed' {
  const next = path.join(o.pinRoot, NEXT_DIR);
  const old = path.join(o.pinRoot, OLD_DIR);
  if (!exists(next)) {
    removePinTree(old); // a commit that ended before its last removal
    return 'none';
  }
  if (fs.readdirSync(next).length === 0) {
    // A commit that ended between its last rename and its removals.
    fs.rmdirSync(next);
    removePinTree(old);
    return 'none';
  }
  const rec = readAbiRecord(path.join(next, 'sy_abi'));
  if (!rec || rec.phase < Phase.Prepared) {
    o.onStep?.('rollback', { reason: 'an upgrade stopped before it was prepared' });
    removePinTree(next);
    removePinTree(old);
    return 'rolled-back';
  }
  o.onStep?.('resume', { phase: Phase[rec.phase], to: rec.version, from: rec.from });
  // Which maps were replaced is read back from the pins: a staged map that is not the pinned one.
  const replaced = [...pinnedMaps(next).keys()].filter((m) => exists(path.join(o.pinRoot, m)) && !sameMap(path.join(o.pinRoot, m), path.join(next, m)));
  new Swap(o, rec.from, rec.version, rec.build, replaced, null).run(rec.phase);
  return 'resumed';
}

/** Upgrades the pinned dataplane to this agent's objects. Call recoverUpgrade() first. */
export function upgradeDataplane(o: UpgradeOptions, plan = upgradePlan(o)): UpgradeResult {
  const next = path.join(o.pinRoot, NEXT_DIR);
  const n = native();
  const build = buildId(o.objectDir, o.handoff);
  o.onStep?.('prepare', { from: plan.from, to: ABI_VERSION, maps: plan.maps.filter((m) => m.action !== 'share').map((m) => `${m.name}:${m.action}`).join(' ') });
  let copied: Map<string, Set<string>>;
  try {
    fs.mkdirSync(path.join(next, 'progs'), { recursive: true });
    for (const m of plan.maps) if (m.action === 'share') n.objPin(path.join(o.pinRoot, m.name), path.join(next, m.name));
    o.onPoint?.('prepare:shared-pinned');
    for (const obj of OBJECTS) {
      n.loadObject(objectFile(o.objectDir, obj, o.handoff), next, path.join(next, 'progs'), o.mapSizes);
      o.onPoint?.(`prepare:loaded:${obj}`);
    }
    copied = new Map();
    for (const m of plan.maps) {
      if (m.action !== 'copy' && m.action !== 'convert') continue;
      const upgrader = m.action === 'convert' ? UPGRADERS[m.name]?.[plan.from] : undefined;
      copied.set(m.name, withMaps(path.join(o.pinRoot, m.name), path.join(next, m.name), (from, to) => copyEntries(from, to, { upgrader })));
      o.onPoint?.(`prepare:copied:${m.name}`);
    }
    writeAbiRecord(path.join(next, 'sy_abi'), { version: ABI_VERSION, from: plan.from, phase: Phase.Prepared, build });
  } catch (e) {
    removePinTree(next);
    throw e;
  }
  o.onPoint?.('recorded:Prepared');
  const replaced = plan.maps.filter((m) => m.action !== 'share' && m.action !== 'create' && m.action !== 'drop').map((m) => m.name);
  const tcSwapped = new Swap(o, plan.from, ABI_VERSION, build, replaced, copied).run(Phase.Prepared);
  return { from: plan.from, to: ABI_VERSION, maps: plan.maps, tcSwapped };
}

/** The journaled half: swap, delta, commit; each phase idempotent and recorded when done. */
class Swap {
  private readonly next: string;

  constructor(
    private readonly o: UpgradeOptions,
    private readonly from: number,
    private readonly to: number,
    private readonly build: string,
    /** Maps staged as new maps that replace a pinned one of the same name. */
    private readonly replaced: string[],
    /** Keys copied at prepare, per map; null after a restart. */
    private readonly copied: Map<string, Set<string>> | null,
  ) {
    this.next = path.join(o.pinRoot, NEXT_DIR);
  }

  private record(phase: Phase): void {
    writeAbiRecord(path.join(this.next, 'sy_abi'), { version: this.to, from: this.from, phase, build: this.build });
    this.o.onPoint?.(`recorded:${Phase[phase]}`);
  }

  private prog(name: string): string {
    return path.join(this.next, 'progs', name);
  }

  run(done: Phase): number {
    let tc = 0;
    if (done < Phase.TcSwapped) {
      this.o.onStep?.('swap-tc', { interfaces: this.o.tcTargets.length });
      tc = this.swapTc();
      this.record(Phase.TcSwapped);
    }
    if (done < Phase.LinksSwapped) {
      this.o.onStep?.('swap-links');
      this.swapLinks();
      this.record(Phase.LinksSwapped);
    }
    if (done < Phase.DeltaCopied) {
      this.o.onStep?.('delta', { maps: this.replaced.join(' ') });
      this.copyDelta();
      this.record(Phase.DeltaCopied);
    }
    this.o.onStep?.('commit');
    this.commit();
    return tc;
  }

  /** Replaces our filter on every pod interface that still has one; gone netns are skipped. */
  private swapTc(): number {
    const n = native();
    let swapped = 0;
    for (const t of this.o.tcTargets) {
      for (const dir of ['ingress', 'egress'] as const) {
        try {
          if (n.tcQuery(t.netnsPath, t.ifname, dir, TC_PRIORITY, TC_HANDLE) === null) continue;
          n.tcAttach(this.prog(`sy_tc_${dir}`), t.netnsPath, t.ifname, dir, TC_PRIORITY, TC_HANDLE);
          swapped++;
          this.o.onPoint?.(`swap-tc:${swapped}`);
        } catch (e) {
          if (isNativeError(e) && (e.code === 'ENOENT' || e.code === 'ENODEV')) continue; // the pod went away
          throw e;
        }
      }
    }
    return swapped;
  }

  private swapLinks(): void {
    const n = native();
    const links = path.join(this.o.pinRoot, 'links');
    fs.mkdirSync(links, { recursive: true });
    const hooks = new Set<string>();
    for (const p of PROGRAMS) {
      if ('cgroupHook' in p) {
        const link = path.join(links, p.cgroupHook);
        hooks.add(p.cgroupHook);
        if (exists(link)) n.linkUpdate(link, this.prog(p.name));
        else n.attachCgroup(this.prog(p.name), this.o.cgroupPath, p.cgroupHook, link);
        this.o.onPoint?.(`swap-links:${p.cgroupHook}`);
      }
      if ('skMsgMap' in p) {
        // Attaching to the sockhash replaces its program for sockets inserted from now on;
        // sockets already in it keep the program they were inserted with.
        const map = path.join(this.next, p.skMsgMap);
        if (this.o.sockmapAcceleration) n.attachSkMsg(this.prog(p.name), map);
        else if (exists(path.join(this.o.pinRoot, 'progs', p.name))) n.detachSkMsg(path.join(this.o.pinRoot, 'progs', p.name), map);
        this.o.onPoint?.('swap-links:sk_msg');
      }
    }
    for (const l of fs.readdirSync(links)) {
      if (hooks.has(l)) continue;
      n.detachLink(path.join(links, l));
      fs.unlinkSync(path.join(links, l));
    }
  }

  /** What the old programs wrote between prepare and the swap. */
  private copyDelta(): void {
    const n = native();
    for (const name of this.replaced) {
      const oldPin = path.join(this.o.pinRoot, name);
      const newPin = path.join(this.next, name);
      if (!exists(oldPin) || !exists(newPin)) continue;
      withMaps(oldPin, newPin, (from, to) => {
        const info = n.mapInfo(to);
        const upgrader = UPGRADERS[name]?.[this.from];
        if (info.perCpu) return upgrader ? 0 : addCounters(from, to); // converted counters were taken whole at prepare
        if (!isCopyable(info.type)) return 0; // 'fresh' maps: nothing to copy
        copyEntries(from, to, { upgrader, onlyMissing: true });
        // Entries copied at prepare whose connection has closed since: the old programs deleted them.
        const before = this.copied?.get(name);
        if (before && !upgrader) {
          const live = new Set(n.mapKeys(from).map((k) => k.toString('hex')));
          for (const k of before) if (!live.has(k)) n.mapDelete(to, Buffer.from(k, 'hex'));
        }
        return 0;
      });
      this.o.onPoint?.(`delta:${name}`);
    }
  }

  /** Renames, each idempotent: a restart anywhere in here finishes the same way. */
  private commit(): void {
    const root = this.o.pinRoot;
    const old = path.join(root, OLD_DIR);
    const retire = (p: string) => {
      fs.mkdirSync(old, { recursive: true });
      const dst = path.join(old, path.basename(p));
      if (exists(dst)) removePinTree(dst);
      fs.renameSync(p, dst);
    };
    const staged = fs.readdirSync(this.next).filter((f) => f !== 'sy_abi' && f !== 'progs');
    for (const f of staged) {
      const live = path.join(root, f);
      if (exists(live) && sameMap(live, path.join(this.next, f))) fs.unlinkSync(path.join(this.next, f));
      else {
        if (exists(live)) retire(live);
        this.o.onPoint?.(`commit:retired:${f}`);
        fs.renameSync(path.join(this.next, f), live);
      }
      this.o.onPoint?.(`commit:${f}`);
    }
    const defined = new Set(newSpecs(this.o).map((m) => m.name));
    for (const f of pinnedMaps(root).keys()) if (!defined.has(f) && !staged.includes(f)) retire(path.join(root, f));
    if (exists(path.join(this.next, 'progs'))) {
      if (exists(path.join(root, 'progs'))) retire(path.join(root, 'progs'));
      this.o.onPoint?.('commit:retired:progs');
      fs.renameSync(path.join(this.next, 'progs'), path.join(root, 'progs'));
    }
    this.record(Phase.Live);
    fs.renameSync(path.join(this.next, 'sy_abi'), path.join(root, 'sy_abi'));
    this.o.onPoint?.('commit:record');
    removePinTree(old);
    fs.rmdirSync(this.next);
  }
}
