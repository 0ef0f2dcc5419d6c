/**
 * The TypeScript codecs and the C structs are two views of one ABI. This test
 * reads the layout clang compiled into every BPF object (BTF) and holds the
 * TypeScript offsets, sizes and counter names to it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { bpfObjectDir, BtfEnum, BtfStruct, native } from '../native';
import { COUNTERS, LAYOUTS, POD_CONFIG, POD_FLAG_NO_SOCKMAP, decodePodConfig, encodePodConfig } from '../interceptor/src/dataplane/abi';
import { parseCidr } from '../api/addr';
import { PROGRAMS } from '../interceptor/src/dataplane/dataplane';
import { MAPS, OBJECTS, objectFile } from '../interceptor/src/dataplane/layout';
import { DEFAULT_MAP_SIZES } from '../interceptor/src/dataplane/config';
import { ABI_VERSION } from '../interceptor/src/dataplane/abi-record';
import { NODEPORT_LAYOUTS } from '../interceptor/src/dataplane/abi-nodeport';
import { projectRoot } from '../native';

const objects = [...new Set(PROGRAMS.map((p) => path.join(bpfObjectDir(), `${p.object}.bpf.o`)))];

describe('ABI shared by BPF and TypeScript', () => {
  test('every BPF object is built', () => {
    for (const o of objects) expect(fs.existsSync(o)).toBe(true);
  });

  test.each([...LAYOUTS, ...NODEPORT_LAYOUTS].map((l) => [l.name, l] as const))('struct %s matches its BTF in every object that has it', (name, layout) => {
    let seen = 0;
    for (const obj of objects) {
      const btf = native().btfDescribe(obj, name) as BtfStruct | null;
      if (!btf) continue;
      seen++;
      expect(btf.size).toBe(layout.size);
      const fromC = Object.fromEntries(btf.members.map((m) => [m.name, [m.offset, m.size]]));
      expect(fromC).toEqual(Object.fromEntries(Object.entries(layout.fields).map(([k, v]) => [k, [...v]])));
    }
    expect(seen).toBeGreaterThan(0);
  });

  test('the ABI version the agent pins is the one bpf/headers/switchyard.h declares', () => {
    const header = fs.readFileSync(path.join(projectRoot(), 'bpf', 'headers', 'switchyard.h'), 'utf8');
    expect(Number(/^#define SY_ABI_VERSION (\d+)$/m.exec(header)?.[1])).toBe(ABI_VERSION);
  });

  test('every map the agent opens is one the objects pin by name', () => {
    const pinned = new Set(objects.flatMap((o) => native().objectMaps(o, {}).filter((m) => m.pinned).map((m) => m.name)));
    for (const m of MAPS) expect([m, pinned.has(m)]).toEqual([m, true]);
  });

  // Both builds of the hand-off (bpf/headers/handoff.h) must agree with the tables.
  const handoffs = ['task-storage', 'socket-cookie'] as const;

  test.each(handoffs)("the agent's default map sizes are the sizes the objects define (%s)", (handoff) => {
    const defined = new Map(OBJECTS.flatMap((o) => native().objectMaps(objectFile(bpfObjectDir(), o, handoff), {})).map((m) => [m.name, m.maxEntries]));
    const sized = Object.entries(DEFAULT_MAP_SIZES).filter(([name]) => defined.has(name));
    expect(sized.length).toBeGreaterThan(10);
    for (const [name, size] of sized) expect([name, defined.get(name)]).toEqual([name, size]);
  });

  test.each(handoffs)("PROGRAMS is the objects' programs, each attached the way libbpf reads its SEC() (%s)", (handoff) => {
    const progs = OBJECTS.flatMap((o) => native().objectPrograms(objectFile(bpfObjectDir(), o, handoff)).map((p) => ({ ...p, object: o })));
    expect(progs.map((p) => p.name).sort()).toEqual(PROGRAMS.map((p) => p.name).sort());
    for (const p of PROGRAMS) {
      const built = progs.find((x) => x.name === p.name)!;
      expect([p.name, built.object]).toEqual([p.name, p.object]);
      if ('cgroupHook' in p) expect([p.name, native().cgroupHookAttachType(p.cgroupHook)]).toEqual([p.name, built.attachType]);
      if ('skMsgMap' in p) expect([p.name, built.section]).toEqual([p.name, 'sk_msg']);
      if ('tc' in p) expect([p.name, built.section]).toEqual([p.name, 'tc']);
    }
  });

  test('counter names and indexes match enum sy_counter', () => {
    const btf = native().btfDescribe(objects[0], 'sy_counter') as BtfEnum;
    expect(btf.kind).toBe('enum');
    const expected = Object.fromEntries(COUNTERS.map((c, i) => [c, i]));
    expect(btf.values).toEqual({ ...expected, SY_C_MAX: COUNTERS.length });
  });

  test.each([true, false])('pod config round-trips through the codec (sockmap %s)', (sockmap) => {
    const config = {
      ips: ['10.1.2.3', 'fd00::7'],
      cgroupId: 123456789n,
      cgroupLevel: 4,
      sidecarUid: 1337,
      outboundPort: 15001,
      inboundPort: 15003,
      excludeOutboundPorts: [22, 443],
      excludeInboundPorts: [15021],
      excludeOutboundCidrs: [parseCidr('169.254.0.0/16'), parseCidr('fd00:1::/32')],
      sockmap,
    };
    const encoded = encodePodConfig(config);
    expect(encoded.readUInt8(POD_CONFIG.fields.flags[0])).toBe(sockmap ? 0 : POD_FLAG_NO_SOCKMAP);
    const decoded = decodePodConfig(encoded);
    expect({ ...decoded, excludeOutboundCidrs: decoded.excludeOutboundCidrs.map((c) => c.text) }).toEqual({
      ...config,
      excludeOutboundCidrs: ['169.254.0.0/16', 'fd00:1::/32'],
    });
  });
});
