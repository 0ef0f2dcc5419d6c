import { MapSpec } from '../../../native';
import { EntryUpgrader, UPGRADERS, planMaps } from './migrate';

// enum bpf_map_type
const HASH = 1;
const PERCPU_ARRAY = 6;
const LRU_HASH = 9;
const SOCKHASH = 18;
const TASK_STORAGE = 29;

const spec = (name: string, type: number, keySize: number, valueSize: number, maxEntries: number, flags = 0): MapSpec => ({ name, type, keySize, valueSize, maxEntries, flags, pinned: true });
const pinned = (...specs: MapSpec[]) => new Map(specs.map((s) => [s.name, s]));
const identity: EntryUpgrader = (k, v) => [k, v];

describe('planMaps: how each pinned map crosses an upgrade', () => {
  test.each([
    ['unchanged', spec('m', HASH, 8, 16, 100), spec('m', HASH, 8, 16, 100), 'share'],
    ['resized hash', spec('m', HASH, 8, 16, 100), spec('m', HASH, 8, 16, 200), 'copy'],
    ['hash becomes LRU', spec('m', HASH, 8, 16, 100), spec('m', LRU_HASH, 8, 16, 100), 'copy'],
    ['flags changed', spec('m', HASH, 8, 16, 100), spec('m', HASH, 8, 16, 100, 1), 'copy'],
    ['counters grow', spec('c', PERCPU_ARRAY, 4, 8, 26), spec('c', PERCPU_ARRAY, 4, 8, 28), 'add'],
    ['sockhash resized', spec('s', SOCKHASH, 44, 4, 100), spec('s', SOCKHASH, 44, 4, 200), 'fresh'],
    ['task storage value grows', spec('t', TASK_STORAGE, 4, 24, 0, 1), spec('t', TASK_STORAGE, 4, 32, 0, 1), 'fresh'],
  ] as const)('%s', (_what, old, next, action) => {
    expect(planMaps(pinned(old), [next], 1)).toEqual([expect.objectContaining({ name: next.name, action })]);
  });

  test('a map new in this version is created; one no longer defined is dropped', () => {
    const plan = planMaps(pinned(spec('gone', HASH, 8, 8, 10)), [spec('new', HASH, 8, 8, 10)], 1);
    expect(plan.map((m) => [m.name, m.action])).toEqual([
      ['new', 'create'],
      ['gone', 'drop'],
    ]);
  });

  test('another entry layout needs an upgrader from the pinned version', () => {
    const old = spec('m', HASH, 8, 16, 100);
    const next = spec('m', HASH, 8, 24, 100);
    expect(() => planMaps(pinned(old), [next], 1)).toThrow('cannot carry these maps across the upgrade: m (valueSize 16 → 24, and no upgrader from version 1)');
    expect(planMaps(pinned(old), [next], 1, { m: { 1: identity } })).toEqual([expect.objectContaining({ action: 'convert' })]);
    expect(() => planMaps(pinned(old), [next], 2, { m: { 1: identity } })).toThrow(/no upgrader from version 2/);
  });

  test('sy_np_snat of ABI 4 and 5 converts into 6: the same entry, then a zero backend_closed', () => {
    const [v5, v6] = [spec('sy_np_snat', LRU_HASH, 24, 40, 65536), spec('sy_np_snat', LRU_HASH, 24, 48, 65536)];
    for (const from of [4, 5]) expect(planMaps(pinned(v5), [v6], from)).toEqual([expect.objectContaining({ action: 'convert' })]);
    expect(() => planMaps(pinned(v5), [v6], 3)).toThrow(/sy_np_snat \(valueSize 40 → 48, and no upgrader from version 3\)/);
    const [key, value] = [Buffer.alloc(24, 0x11), Buffer.alloc(40, 0xab)];
    const [k, v] = UPGRADERS.sy_np_snat![5]!(key, value)!;
    expect([k.equals(key), v.length, v.subarray(0, 40).equals(value), v.subarray(40).equals(Buffer.alloc(8))]).toEqual([true, 48, true, true]);
  });

  test('per-CPU and shared values never convert into each other; every refusal is named at once', () => {
    expect(() => planMaps(pinned(spec('a', HASH, 4, 8, 10), spec('b', HASH, 8, 8, 10)), [spec('a', PERCPU_ARRAY, 4, 8, 10), spec('b', HASH, 4, 8, 10)], 1)).toThrow(
      'cannot carry these maps across the upgrade: a (type 1 → 6: per-CPU and shared values do not convert); b (keySize 8 → 4, and no upgrader from version 1)',
    );
  });

  test('per-CPU values that are not 64-bit counters are refused', () => {
    expect(() => planMaps(pinned(spec('c', PERCPU_ARRAY, 4, 12, 4)), [spec('c', PERCPU_ARRAY, 4, 12, 8)], 1)).toThrow(/c \(maxEntries 4 → 8: per-CPU values are added as 64-bit counters\)/);
  });
});
