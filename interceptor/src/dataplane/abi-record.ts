/**
 * The ABI version record pinned beside the maps (<pinRoot>/sy_abi): which
 * version of bpf/headers the pinned maps follow, which build of the objects
 * runs, and, while an upgrade runs (<pinRoot>/upgrade-next/sy_abi), how far it got.
 * It is a one-slot array map that the agent creates, because bpffs holds only
 * BPF objects; no BPF program reads it.
 *
 * Versions (bump SY_ABI_VERSION in bpf/headers/switchyard.h and ABI_VERSION
 * here together; test/abi.test.ts holds them equal):
 *   1  the first release; its pins carry no sy_abi record
 *   2  sy_origdst_transient, sy_sock_addr and sy_sidecar_conns; two more
 *      counters (sy_counters grows); sy_pod_config.flags carries
 *      SY_POD_F_NO_SOCKMAP (was reserved, 0)
 *   3  the decision monitor: sy_monitor, sy_monitor_budget and the sy_events
 *      ring buffer (no existing map changes)
 *   4  node frontends (NodePort, external and LoadBalancer IPs, sy_nodeport.c):
 *      sy_lb_external and the sy_np_* maps; ten more counters; sy_lb_backend's
 *      padding became flags (SY_LB_BE_F_LOCAL; 0 keeps the old meaning)
 *   5  snat ports are reused once their flow is over: sy_np_flow's padding
 *      became state and seen, sy_np_config's snat_closed_grace_s (no size
 *      changes; 0 in entries of 4 means "not recorded")
 *   6  a snat port whose backend closed first waits out its TIME_WAIT:
 *      sy_np_snat grows by 8 bytes (backend_closed; migrate.ts converts
 *      entries of 4 and 5), sy_np_config's padding became snat_time_wait_s,
 *      one more counter
 */
import * as fs from 'fs';
import { native } from '../../../native';

export const ABI_VERSION = 6;
/** The version of pins that carry no record: everything before the record existed. */
export const UNRECORDED_VERSION = 1;

/**
 * How far an upgrade got; every phase is durable once written. Ordered, so
 * that a restart resumes from any recorded phase; 0 is never written (a
 * record that reads 0 was created by an agent that died before writing it).
 */
export enum Phase {
  /** The new objects are loaded beside the old ones and the maps copied; nothing attached. */
  Prepared = 1,
  /** tc filters on pod interfaces run the new programs. */
  TcSwapped = 2,
  /** Cgroup links and the sk_msg program run the new programs. */
  LinksSwapped = 3,
  /** Entries the old programs wrote meanwhile are copied; only renames remain. */
  DeltaCopied = 4,
  /** Committed: the record of a live dataplane (staged, it means only the last rename is left). */
  Live = 5,
}

export interface AbiRecord {
  version: number;
  /** The version the last upgrade started from (equal to version after a fresh load). */
  from: number;
  phase: Phase;
  /** layout.ts buildId() of the running objects. */
  build: string;
}

const SIZE = 32;
const BPF_MAP_TYPE_ARRAY = 2;
const KEY = Buffer.alloc(4);

function encode(r: AbiRecord): Buffer {
  const b = Buffer.alloc(SIZE);
  b.writeUInt32LE(r.version, 0);
  b.writeUInt32LE(r.from, 4);
  b.writeUInt32LE(r.phase, 8);
  Buffer.from(r.build.padEnd(32, '0').slice(0, 32), 'hex').copy(b, 16);
  return b;
}

function decode(b: Buffer): AbiRecord {
  return { version: b.readUInt32LE(0), from: b.readUInt32LE(4), phase: b.readUInt32LE(8) as Phase, build: b.subarray(16, 32).toString('hex') };
}

/** The record pinned at pin, or null when there is none. */
export function readAbiRecord(pin: string): AbiRecord | null {
  if (!fs.existsSync(pin)) return null;
  const n = native();
  const fd = n.mapOpen(pin);
  try {
    const v = n.mapLookup(fd, KEY);
    const r = v ? decode(v) : null;
    return r && r.version > 0 ? r : null; // created, never written: an agent died in between
  } finally {
    n.closeFd(fd);
  }
}

/** Writes the record, creating and pinning its map first if needed. */
export function writeAbiRecord(pin: string, r: AbiRecord): void {
  const n = native();
  if (!fs.existsSync(pin)) n.mapCreate(pin, BPF_MAP_TYPE_ARRAY, 4, SIZE, 1, 'sy_abi');
  const fd = n.mapOpen(pin);
  try {
    n.mapUpdate(fd, KEY, encode(r));
  } finally {
    n.closeFd(fd);
  }
}
