/**
 * How each pinned map crosses an upgrade: the pure half of upgrade.ts.
 *
 * planMaps() compares the maps pinned now with the maps the new objects
 * define (with the sizes the agent configures) and decides, per map, what
 * the upgrade does with it. A map it cannot carry across is refused before
 * anything is touched. copyEntries() and addCounters() move entries between
 * two open maps. Calico's felix/bpf/maps/upgrade.go is the model: a map
 * whose layout changes gets a new map and a per-version entry upgrader.
 */
import { MapInfo, MapSpec, native } from '../../../native';
import { upgradeSnatEntry } from './abi-nodeport';

export type MapAction =
  /** Same type, key, value, size and flags: the new programs use the pinned map as it is. */
  | 'share'
  /** New in this version: created empty. */
  | 'create'
  /** Same entry layout, another size, type or flags: entries are copied into a new map. */
  | 'copy'
  /** Another entry layout: an upgrader converts each entry into a new map. */
  | 'convert'
  /** Per-CPU counters of another size: a new map, and after the swap new += old. */
  | 'add'
  /** Entries user space cannot copy (sockets, local storage): a new empty map; sockets already in the old one keep it. */
  | 'fresh'
  /** No longer defined: retired at commit (programs still holding it keep it until they go). */
  | 'drop';

export interface MapPlan {
  name: string;
  action: MapAction;
  /** What differs, for the log. */
  why: string;
}

/** Converts one entry from an older version's layout; null drops it. */
export type EntryUpgrader = (key: Buffer, value: Buffer) => [Buffer, Buffer] | null;

/**
 * Upgraders by map, then by the version they upgrade from. A version that
 * changes a key or value adds its converter here, and the planner refuses
 * an upgrade that would need one that is missing. Most versions changed no
 * entry layout (a reserved 0 became a field whose 0 keeps the old meaning);
 * 6 grew sy_np_snat (abi-record.ts has the history).
 */
export const UPGRADERS: Partial<Record<string, Partial<Record<number, EntryUpgrader>>>> = {
  sy_np_snat: { 4: upgradeSnatEntry, 5: upgradeSnatEntry },
};

export class UpgradeRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpgradeRefused';
  }
}

// enum bpf_map_type
const HASH = 1;
const ARRAY = 2;
const PERCPU_HASH = 5;
const PERCPU_ARRAY = 6;
const LRU_HASH = 9;
const LRU_PERCPU_HASH = 10;
const LPM_TRIE = 11;
const PER_CPU = new Set([PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH]);
/** Maps whose entries user space can read and write back (not sockets, not local storage). */
const COPYABLE = new Set([HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE]);

/** Whether user space can read a map's entries and write them back. */
export const isCopyable = (type: number) => COPYABLE.has(type);

type Layout = Pick<MapInfo, 'type' | 'keySize' | 'valueSize' | 'maxEntries' | 'flags'>;

function differences(old: Layout, spec: Layout): string[] {
  const out: string[] = [];
  for (const f of ['type', 'keySize', 'valueSize', 'maxEntries', 'flags'] as const) {
    if (old[f] !== spec[f]) out.push(`${f} ${old[f]} → ${spec[f]}`);
  }
  return out;
}

/**
 * Decides what happens to every map. `pinned` holds the maps under the pin
 * root now; `specs` the pinned maps the new objects define; `from` the
 * pinned ABI version. Throws UpgradeRefused naming every map it cannot carry.
 */
export function planMaps(pinned: Map<string, Layout>, specs: MapSpec[], from: number, upgraders = UPGRADERS): MapPlan[] {
  const plans: MapPlan[] = [];
  const refused: string[] = [];
  for (const spec of specs) {
    const old = pinned.get(spec.name);
    if (!old) {
      plans.push({ name: spec.name, action: 'create', why: 'new in this version' });
      continue;
    }
    const diff = differences(old, spec);
    const why = diff.join(', ');
    if (!diff.length) plans.push({ name: spec.name, action: 'share', why: 'unchanged' });
    else if (!COPYABLE.has(old.type) || !COPYABLE.has(spec.type)) plans.push({ name: spec.name, action: 'fresh', why });
    else if (PER_CPU.has(old.type) !== PER_CPU.has(spec.type)) refused.push(`${spec.name} (${why}: per-CPU and shared values do not convert)`);
    else if (upgraders[spec.name]?.[from]) plans.push({ name: spec.name, action: 'convert', why });
    else if (old.keySize !== spec.keySize || old.valueSize !== spec.valueSize) refused.push(`${spec.name} (${why}, and no upgrader from version ${from})`);
    else if (PER_CPU.has(spec.type)) {
      if (spec.valueSize % 8) refused.push(`${spec.name} (${why}: per-CPU values are added as 64-bit counters)`);
      else plans.push({ name: spec.name, action: 'add', why });
    } else plans.push({ name: spec.name, action: 'copy', why });
  }
  const defined = new Set(specs.map((s) => s.name));
  for (const name of pinned.keys()) {
    if (!defined.has(name)) plans.push({ name, action: 'drop', why: 'no longer defined' });
  }
  if (refused.length) throw new UpgradeRefused(`cannot carry these maps across the upgrade: ${refused.join('; ')}`);
  return plans;
}

const BPF_NOEXIST = 1;

/**
 * Copies (and converts) every entry of one map into another. With
 * onlyMissing, entries the target already has are kept: the delta after the
 * swap must not overwrite what the new programs wrote. Returns the keys written.
 */
export function copyEntries(fromFd: number, toFd: number, opts: { upgrader?: EntryUpgrader; onlyMissing?: boolean } = {}): Set<string> {
  const n = native();
  const written = new Set<string>();
  const to = n.mapInfo(toFd);
  for (const k of n.mapKeys(fromFd)) {
    const v = n.mapLookup(fromFd, k);
    if (!v) continue; // deleted while we iterate
    const entry = opts.upgrader ? opts.upgrader(k, v) : ([k, v] as [Buffer, Buffer]);
    if (!entry) continue;
    if (to.type === ARRAY && entry[0].readUInt32LE(0) >= to.maxEntries) continue; // a shrunk array drops its tail
    try {
      n.mapUpdate(toFd, entry[0], entry[1], opts.onlyMissing ? BPF_NOEXIST : 0);
      written.add(entry[0].toString('hex'));
    } catch (e) {
      if (opts.onlyMissing && (e as { code?: string }).code === 'EEXIST') continue;
      throw e;
    }
  }
  return written;
}

/**
 * Adds per-CPU 64-bit counters of one map into another, key by key, and
 * zeroes each source entry right after, so that a restart in the middle
 * counts at most one key twice.
 */
export function addCounters(fromFd: number, toFd: number): number {
  const n = native();
  let keys = 0;
  const to = n.mapInfo(toFd);
  for (const k of n.mapKeys(fromFd)) {
    const v = n.mapLookup(fromFd, k);
    if (!v) continue;
    if (to.type === PERCPU_ARRAY && k.readUInt32LE(0) >= to.maxEntries) continue;
    const sum = Buffer.from(n.mapLookup(toFd, k) ?? Buffer.alloc(v.length));
    for (let off = 0; off + 8 <= v.length; off += 8) sum.writeBigUInt64LE(sum.readBigUInt64LE(off) + v.readBigUInt64LE(off), off);
    n.mapUpdate(toFd, k, sum);
    n.mapUpdate(fromFd, k, Buffer.alloc(v.length));
    keys++;
  }
  return keys;
}
