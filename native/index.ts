/**
 * Typed entry point to build/native/switchyard.node. Everything that touches
 * the kernel goes through here; callers never see raw N-API values.
 */
import * as fs from 'fs';
import * as path from 'path';

export type CgroupHook = 'connect4' | 'connect6' | 'sock_ops' | 'getsockopt' | 'sendmsg4' | 'sendmsg6' | 'recvmsg4' | 'recvmsg6' | 'getpeername4' | 'getpeername6';
export type TcDirection = 'ingress' | 'egress';
export type ProgType = 'cgroup_sock_addr' | 'sock_ops' | 'sk_msg' | 'cgroup_sockopt' | 'sched_cls';
export type Helper =
  | 'get_netns_cookie'
  | 'get_socket_cookie'
  | 'get_current_ancestor_cgroup_id'
  | 'msg_redirect_hash'
  | 'sock_hash_update'
  | 'task_storage_get'
  | 'get_current_task_btf';

/** Errors thrown by the addon carry errno and its symbolic code. */
export interface NativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

export interface LoadedObject {
  programs: { name: string; section: string; pinPath: string }[];
  maps: string[];
}

export interface MapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* map flags (BPF_F_NO_PREALLOC, ...). */
  flags: number;
  perCpu: boolean;
}

/** A map as an object file defines it, with the size the agent would give it. */
export interface MapSpec extends Pick<MapInfo, 'name' | 'type' | 'keySize' | 'valueSize' | 'maxEntries' | 'flags'> {
  /** LIBBPF_PIN_BY_NAME: shared by name under the pin root. */
  pinned: boolean;
}

export interface ProgInfo {
  id: number;
  name: string;
  type: number;
  runTimeNs: bigint;
  runCount: bigint;
}

export interface BtfStruct {
  kind: 'struct';
  size: number;
  members: { name: string; offset: number; size: number }[];
}
export interface BtfEnum {
  kind: 'enum';
  size: number;
  values: Record<string, number>;
}

export interface Native {
  loadObject(objPath: string, pinRoot: string, progPinDir: string, mapSizes: Record<string, number>): LoadedObject;
  attachCgroup(progPin: string, cgroupPath: string, hook: CgroupHook, linkPin: string): void;
  cgroupPrograms(cgroupPath: string, hook: CgroupHook): number[];
  detachLink(linkPin: string): void;
  attachSkMsg(progPin: string, mapPin: string): void;
  detachSkMsg(progPin: string, mapPin: string): void;
  tcAttach(progPin: string, netnsPath: string, ifname: string, dir: TcDirection, priority: number, handle: number): {
    createdQdisc: boolean;
  };
  tcDetach(netnsPath: string, ifname: string, dir: TcDirection, priority: number, handle: number): boolean;
  tcQuery(netnsPath: string, ifname: string, dir: TcDirection, priority: number, handle: number): number | null;
  tcDestroyClsact(netnsPath: string, ifname: string): boolean;
  mapOpen(pinPath: string): number;
  closeFd(fd: number): void;
  mapInfo(fd: number): MapInfo;
  mapLookup(fd: number, key: Buffer): Buffer | null;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapKeys(fd: number): Buffer[];
  possibleCpus(): number;
  progInfo(progPin: string): ProgInfo;
  netnsCookie(netnsPath: string): bigint;
  cgroupId(cgroupPath: string): bigint;
  probeProgType(type: ProgType): boolean;
  probeHelper(type: ProgType, helper: Helper): boolean;
  isBpffs(path: string): boolean;
  btfDescribe(objPath: string, typeName: string): BtfStruct | BtfEnum | null;
  /** The upgrade path (native/src/pins.cc). */
  objPin(fromPin: string, toPin: string): void;
  linkUpdate(linkPin: string, progPin: string): void;
  linkProgId(linkPin: string): number;
  mapCreate(pin: string, type: number, keySize: number, valueSize: number, maxEntries: number, name: string): void;
  objectMaps(objPath: string, mapSizes: Record<string, number>): MapSpec[];
  objectPrograms(objPath: string): { name: string; section: string; type: number; attachType: number }[];
  cgroupHookAttachType(hook: CgroupHook): number;
  /** A pinned ring buffer's reader (native/src/ringbuf.cc): records come out in order, without blocking. */
  ringbufOpen(pin: string): RingbufHandle;
  ringbufConsume(handle: RingbufHandle, max: number): Buffer[];
  ringbufClose(handle: RingbufHandle): void;
  /** BPF_PROG_TEST_RUN (native/src/testrun.cc): one run of a pinned program on a crafted packet. */
  progTestRun(progPin: string, packet: Buffer, ifindex?: number): { retval: number; packet: Buffer };
}

/** Opaque: a reader of one pinned ring buffer. */
export type RingbufHandle = { readonly __ringbuf: unique symbol };

/** The checkout (or install) root: the directory holding build/. */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'build', 'native')) || fs.existsSync(path.join(dir, 'Makefile'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the Switchyard root above ${__dirname}`);
    dir = parent;
  }
}

/** The addon: $SWITCHYARD_ADDON, or build/native/ of the root. Resolved when asked, so importing this module never throws. */
export function addonPath(): string {
  return process.env.SWITCHYARD_ADDON ?? path.join(projectRoot(), 'build', 'native', 'switchyard.node');
}

/** The BPF objects: $SWITCHYARD_BPF_DIR, or build/bpf/ of the root. */
export function bpfObjectDir(): string {
  return process.env.SWITCHYARD_BPF_DIR ?? path.join(projectRoot(), 'build', 'bpf');
}

let cached: Native | undefined;

/** Loads the addon on first use, with an error that says how to build it. */
export function native(): Native {
  if (!cached) {
    const file = addonPath();
    if (!fs.existsSync(file)) {
      throw new Error(`the Switchyard native addon is missing at ${file}: build it with 'make native'`);
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as Native;
  }
  return cached;
}

/** Duck-typed: errors from the addon may come from another realm (vm contexts, jest). */
export function isNativeError(e: unknown): e is NativeError {
  return typeof e === 'object' && e !== null && typeof (e as NativeError).errno === 'number' && typeof (e as NativeError).code === 'string';
}
