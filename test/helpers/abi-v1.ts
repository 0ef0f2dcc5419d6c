/**
 * The agent of BPF ABI version 1, as far as the kernel sees it: what its
 * Dataplane.load pinned and attached, and what its registerPod wrote, using
 * the objects built from the version-1 sources (test/fixtures/abi-v1, `make
 * bpf-abi1`). The pin layout and the pod entries' encoding are the ones that
 * version used (it pinned no ABI record); the upgrade test starts from here.
 */
import * as fs from 'fs';
import * as path from 'path';
import { native, projectRoot } from '../../native';
import { OBJECTS, PROGRAMS, TC_HANDLE, TC_PRIORITY, objectFile } from '../../interceptor/src/dataplane/layout';
import { OrigdstHandoff, cgroupLevel, findCgroup2Mount } from '../../interceptor/src/dataplane/host';
import { POD_COUNTERS, encodeNetnsKey, encodePodConfig, encodePodRef } from '../../interceptor/src/dataplane/abi';
import { encodeAddr } from '../../api/addr';
import { Interception, validateInterception } from '../../api/interception';

export const ABI1_OBJECT_DIR = path.join(projectRoot(), 'build', 'bpf-abi1');


/** Loads, pins and attaches the version-1 objects as that agent did. */
export function loadAbi1(pinRoot: string, cgroupPath: string, handoff: OrigdstHandoff): void {
  const n = native();
  fs.mkdirSync(path.join(pinRoot, 'progs'), { recursive: true });
  fs.mkdirSync(path.join(pinRoot, 'links'), { recursive: true });
  // Objects that came later (sy_nodeport, version 4) did not exist in version 1.
  const objects = OBJECTS.filter((obj) => fs.existsSync(objectFile(ABI1_OBJECT_DIR, obj, handoff)));
  for (const obj of objects) n.loadObject(objectFile(ABI1_OBJECT_DIR, obj, handoff), pinRoot, path.join(pinRoot, 'progs'), {});
  for (const p of PROGRAMS.filter((x) => objects.includes(x.object))) {
    const progPin = path.join(pinRoot, 'progs', p.name);
    if ('cgroupHook' in p) n.attachCgroup(progPin, cgroupPath, p.cgroupHook, path.join(pinRoot, 'links', p.cgroupHook));
    if ('skMsgMap' in p) n.attachSkMsg(progPin, path.join(pinRoot, p.skMsgMap));
  }
}

/** Registers a pod as version 1's registerPod did: config, counters, IPs, then tc on its interface. */
export function registerAbi1(pinRoot: string, pod: { netnsPath: string; cgroupPath: string; ips: string[]; interception: Interception; ifname: string }): bigint {
  const n = native();
  const open = (m: string) => n.mapOpen(path.join(pinRoot, m));
  const cookie = n.netnsCookie(pod.netnsPath);
  const i = validateInterception(pod.interception);
  const config = encodePodConfig({
    ips: pod.ips,
    cgroupId: n.cgroupId(pod.cgroupPath),
    cgroupLevel: cgroupLevel(pod.cgroupPath, findCgroup2Mount()),
    sidecarUid: i.sidecarUid,
    outboundPort: i.outboundPort,
    inboundPort: i.inboundPort,
    excludeOutboundPorts: i.excludeOutboundPorts,
    excludeInboundPorts: i.excludeInboundPorts,
    excludeOutboundCidrs: i.cidrs,
  });
  const fds = { pods: open('sy_pods'), counters: open('sy_pod_counters'), byIp: open('sy_pod_by_ip') };
  try {
    n.mapUpdate(fds.pods, encodeNetnsKey(cookie), config);
    n.mapUpdate(fds.counters, encodeNetnsKey(cookie), Buffer.alloc(POD_COUNTERS.size * n.possibleCpus()));
    for (const ip of pod.ips) n.mapUpdate(fds.byIp, encodeAddr(ip), encodePodRef(cookie));
  } finally {
    for (const fd of Object.values(fds)) n.closeFd(fd);
  }
  for (const dir of ['ingress', 'egress'] as const) {
    n.tcAttach(path.join(pinRoot, 'progs', `sy_tc_${dir}`), pod.netnsPath, pod.ifname, dir, TC_PRIORITY, TC_HANDLE);
  }
  return cookie;
}
