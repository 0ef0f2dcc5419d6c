import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError } from '../../../api/interception';
import { resolveCgroupPath } from './cgroup-path';
import { validateAgentConfig } from './config';

describe('cgroupPath: auto', () => {
  let mount: string;
  beforeEach(() => (mount = fs.mkdtempSync(path.join(os.tmpdir(), 'sycg-'))));
  afterEach(() => fs.rmSync(mount, { recursive: true, force: true }));
  const cfg = (cgroupPath: string) => validateAgentConfig({ nodeName: 'n', cgroupPath });

  test('finds the systemd driver kubepods.slice first, then the cgroupfs driver kubepods', () => {
    fs.mkdirSync(path.join(mount, 'kubepods'));
    expect(resolveCgroupPath(cfg('auto'), mount).cgroupPath).toBe(path.join(mount, 'kubepods'));
    fs.mkdirSync(path.join(mount, 'kubepods.slice'));
    expect(resolveCgroupPath(cfg('auto'), mount).cgroupPath).toBe(path.join(mount, 'kubepods.slice'));
  });

  test('an explicit path is kept as it is', () => {
    expect(resolveCgroupPath(cfg('/somewhere/else'), mount).cgroupPath).toBe('/somewhere/else');
  });

  test('nothing found is one error that names both places and what to set', () => {
    expect(() => resolveCgroupPath(cfg('auto'), mount)).toThrow(ConfigError);
    expect(() => resolveCgroupPath(cfg('auto'), mount)).toThrow(/neither .*kubepods\.slice nor .*kubepods exists: set cgroupPath/);
  });
});
