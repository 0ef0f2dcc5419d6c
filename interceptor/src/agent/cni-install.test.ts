import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniInstallError, PLUGIN_TYPE, activeConfig, installCni, uninstallCni } from './cni-install';

describe('switchyard-cni install into the node CNI configuration', () => {
  let dir: string;
  let conf: string;
  let bin: string;
  let src: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cni-'));
    conf = path.join(dir, 'net.d');
    bin = path.join(dir, 'bin');
    fs.mkdirSync(conf);
    src = path.join(dir, 'switchyard-cni.build');
    fs.writeFileSync(src, '#!/bin/sh\n');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const bridgeList = {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    plugins: [
      { type: 'bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.0.0/24' }]] } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  const read = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

  test('a conflist gets our entry last; running again updates it in place; uninstall restores the original', () => {
    const f = path.join(conf, '10-flannel.conflist');
    fs.writeFileSync(f, JSON.stringify(bridgeList));
    fs.writeFileSync(path.join(conf, '99-other.conflist'), JSON.stringify({ ...bridgeList, name: 'other' }));
    expect(installCni({ confDir: conf, binDir: bin, binSource: src, settings: { agentSocket: '/run/switchyard/agent.sock' } })).toEqual({ file: f, action: 'added' });
    expect(read(f).plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', PLUGIN_TYPE]);
    expect(read(f).plugins[2]).toEqual({ type: PLUGIN_TYPE, agentSocket: '/run/switchyard/agent.sock' });
    expect(fs.statSync(path.join(bin, PLUGIN_TYPE)).mode & 0o777).toBe(0o755);
    expect(read(path.join(conf, '99-other.conflist')).plugins).toHaveLength(2); // only the active file is touched

    expect(installCni({ confDir: conf, binDir: bin, binSource: src, settings: { failOpen: true } }).action).toBe('updated');
    expect(read(f).plugins.filter((p: { type: string }) => p.type === PLUGIN_TYPE)).toEqual([{ type: PLUGIN_TYPE, failOpen: true }]);

    expect(uninstallCni({ confDir: conf, binDir: bin })).toEqual({ file: f, action: 'removed' });
    expect(read(f)).toEqual(bridgeList);
    expect(fs.existsSync(path.join(bin, PLUGIN_TYPE))).toBe(false);
    expect(uninstallCni({ confDir: conf, binDir: bin }).action).toBe('absent'); // idempotent
  });

  test('a single-plugin .conf becomes a conflist, and the original comes back on uninstall', () => {
    const f = path.join(conf, '10-bridge.conf');
    const single = { cniVersion: '0.4.0', name: 'mynet', type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.22.0.0/16' } };
    fs.writeFileSync(f, JSON.stringify(single));
    const r = installCni({ confDir: conf, binDir: bin, binSource: src });
    expect(r).toEqual({ file: path.join(conf, '10-bridge.conflist'), action: 'converted' });
    expect(activeConfig(conf)).toBe(r.file);
    expect(read(r.file)).toEqual({ cniVersion: '0.4.0', name: 'mynet', plugins: [{ type: 'bridge', bridge: 'cni0', ipam: single.ipam }, { type: PLUGIN_TYPE }] });
    expect(installCni({ confDir: conf, binDir: bin, binSource: src }).action).toBe('updated');
    expect(uninstallCni({ confDir: conf, binDir: bin })).toEqual({ file: f, action: 'restored' });
    expect(fs.readdirSync(conf)).toEqual(['10-bridge.conf']);
    expect(read(f)).toEqual(single);
  });

  test.each([
    ['no configuration at all', () => undefined, /no CNI network configuration in .*install the cluster's main CNI plugin first/],
    ['garbage in the active file', (c: string) => fs.writeFileSync(path.join(c, '10-x.conflist'), '{not json'), /10-x.conflist is not a valid CNI configuration/],
    ['JSON that is not a CNI config', (c: string) => fs.writeFileSync(path.join(c, '10-x.conf'), '{"name":"x"}'), /neither "plugins" nor "type"/],
  ])('%s: one clear error, nothing written', (_n, setup, re) => {
    setup(conf);
    const before = fs.readdirSync(conf).map((f) => [f, fs.readFileSync(path.join(conf, f), 'utf8')]);
    expect(() => installCni({ confDir: conf, binDir: bin, binSource: src })).toThrow(CniInstallError);
    expect(() => installCni({ confDir: conf, binDir: bin, binSource: src })).toThrow(re);
    expect(fs.readdirSync(conf).map((f) => [f, fs.readFileSync(path.join(conf, f), 'utf8')])).toEqual(before);
    expect(fs.existsSync(path.join(bin, PLUGIN_TYPE))).toBe(false);
  });
});
