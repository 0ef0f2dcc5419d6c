import { ConfigError, DEFAULT_INTERCEPTION, validateInterception, validatePodIps } from '../../../api/interception';
import { validateMapSizes } from './config';
import { decodeAddr, encodeAddr, parseCidr } from '../../../api/addr';
import { checkKernelFeatures, cgroupLevel, cgroup2MountRoot, findCgroup2Mount, HostError } from './host';

const ok = DEFAULT_INTERCEPTION;

describe('interception settings', () => {
  test('defaults are valid', () => {
    expect(validateInterception(ok).cidrs).toEqual([]);
  });

  test.each([
    ['port 0', { outboundPort: 0 }, 'outbound port must be an integer from 1 to 65535, got 0'],
    ['port too large', { inboundPort: 70000 }, 'inbound port must be an integer from 1 to 65535, got 70000'],
    ['same ports', { inboundPort: 15001 }, 'outbound and inbound port are both 15001'],
    ['uid 0', { sidecarUid: 0 }, 'uid 0 would exempt every root process'],
    ['malformed CIDR', { excludeOutboundCidrs: ['10.0.0.0/33'] }, "'10.0.0.0/33' is not a CIDR: prefix /33 is longer than 32 bits"],
    ['not a CIDR', { excludeOutboundCidrs: ['banana'] }, "'banana' is not a CIDR"],
    ['too many ports', { excludeOutboundPorts: Array.from({ length: 17 }, (_, i) => i + 1) }, 'has 17 ports; at most 16'],
    ['too many CIDRs', { excludeOutboundCidrs: Array.from({ length: 9 }, (_, i) => `10.${i}.0.0/16`) }, 'has 9 entries; at most 8'],
    ['bad excluded port', { excludeInboundPorts: [80, -1] }, 'excluded inbound ports[1] must be an integer'],
  ])('%s is rejected with a clear message', (_, patch, message) => {
    expect(() => validateInterception({ ...ok, ...patch })).toThrow(ConfigError);
    expect(() => validateInterception({ ...ok, ...patch })).toThrow(message);
  });

  test('all problems are reported at once', () => {
    try {
      validateInterception({ ...ok, outboundPort: 0, excludeOutboundCidrs: ['x'] });
      throw new Error('expected a ConfigError');
    } catch (e) {
      expect((e as ConfigError).problems).toHaveLength(2);
    }
  });

  test('pod IPs and map sizes', () => {
    expect(() => validatePodIps([])).toThrow('at least one IP');
    expect(() => validatePodIps(['10.0.0.1', 'fd00::1', '10.0.0.2'])).toThrow('at most 2 IPs');
    expect(() => validatePodIps(['10.0.0.300'])).toThrow("'10.0.0.300' is not an IP address");
    expect(validateMapSizes({ sy_pods: 10 }).sy_pods).toBe(10);
    expect(() => validateMapSizes({ sy_pods: 0 })).toThrow('size of sy_pods must be an integer');
    expect(() => validateMapSizes({ nope: 1 } as never)).toThrow("unknown map 'nope'");
  });
});

describe('addresses', () => {
  test.each([
    ['10.1.2.3', '00000000000000000000ffff0a010203'],
    ['::1', '00000000000000000000000000000001'],
    ['fd00::a:1', 'fd00' + '0000'.repeat(5) + '000a0001'],
    ['::ffff:10.0.0.1', '00000000000000000000ffff0a000001'],
  ])('%s encodes v4-mapped / network order', (ip, hex) => {
    expect(encodeAddr(ip).toString('hex')).toBe(hex);
  });

  test('decode is the inverse of encode', () => {
    for (const ip of ['10.1.2.3', '::1', 'fd00::a:1', '2001:db8:0:1::5', 'fe80::1:0:0:1']) {
      expect(decodeAddr(encodeAddr(ip))).toBe(ip);
    }
  });

  test('CIDRs are normalised into the 128-bit space', () => {
    const c = parseCidr('10.1.2.3/8');
    expect(decodeAddr(c.addr)).toBe('10.0.0.0');
    expect(c.mask.toString('hex')).toBe('ffffffffffffffffffffffffff000000');
    expect(parseCidr('fd00::/8').mask.toString('hex')).toBe('ff' + '00'.repeat(15));
  });
});

describe('host facts', () => {
  const hybrid = [
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
    '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  ].join('\n');
  const pure = '30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate';

  test('finds cgroup2 on hybrid and pure hosts', () => {
    expect(findCgroup2Mount(hybrid)).toBe('/sys/fs/cgroup/unified');
    expect(findCgroup2Mount(pure)).toBe('/sys/fs/cgroup');
  });

  test('no cgroup2 is one clear error', () => {
    expect(() => findCgroup2Mount(hybrid.split('\n').slice(0, 2).join('\n'))).toThrow(/no cgroup2 filesystem is mounted.*mount -t cgroup2/);
  });

  test('cgroup level counts from the mount', () => {
    expect(cgroupLevel('/sys/fs/cgroup/unified', '/sys/fs/cgroup/unified', '/')).toBe(0);
    expect(cgroupLevel('/sys/fs/cgroup/unified/kubepods/pod1', '/sys/fs/cgroup/unified', '/')).toBe(2);
    // A node whose cgroup2 mount is a bind of the machine's /lab/nodes/n0: the kernel counts from the real root.
    expect(cgroupLevel('/sys/fs/cgroup/kubepods/pod1', '/sys/fs/cgroup', '/lab/nodes/n0')).toBe(5);
    expect(() => cgroupLevel('/tmp/x', '/sys/fs/cgroup/unified')).toThrow(HostError);
  });

  test('the cgroup2 mount root comes from mountinfo: a bind-mounted subtree, or outside the cgroup namespace', () => {
    const bound = '40 30 0:27 /lab/nodes/n0 /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n';
    expect(cgroup2MountRoot('/sys/fs/cgroup', bound)).toBe('/lab/nodes/n0');
    expect(cgroup2MountRoot('/sys/fs/cgroup', pure)).toBe('/');
    expect(() => cgroup2MountRoot('/sys/fs/cgroup', bound.replace('/lab/nodes/n0', '/../..'))).toThrow(/outside this process's cgroup namespace.*host's cgroup namespace/);
  });

  test('a kernel without a hook is named in the error', () => {
    const noSockopt = (type: string) => type !== 'cgroup_sockopt';
    expect(() => checkKernelFeatures(noSockopt)).toThrow(
      /this kernel lacks the cgroup getsockopt hook \(Linux 5\.3\+\), bpf_get_netns_cookie in getsockopt \(Linux 5\.8\+\)/,
    );
  });
});
