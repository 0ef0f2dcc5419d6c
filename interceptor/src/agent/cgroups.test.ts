import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findPodCgroup } from './cgroups';

describe('findPodCgroup', () => {
  let root: string;
  const uid = '0b5e0d5c-3f7a-4c1e-9a77-2f7a9d1c0e11';
  const u = uid.replace(/-/g, '_');
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cg-'))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));
  const mk = (rel: string) => {
    fs.mkdirSync(path.join(root, rel), { recursive: true });
    return path.join(root, rel);
  };

  test.each([
    ['cgroupfs guaranteed', `kubepods/pod${uid}`],
    ['cgroupfs burstable', `kubepods/burstable/pod${uid}`],
    ['cgroupfs besteffort', `kubepods/besteffort/pod${uid}`],
    ['systemd guaranteed', `kubepods.slice/kubepods-pod${u}.slice`],
    ['systemd burstable', `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice`],
    ['a custom layout, by search', `custom/nested/pod${uid}`],
  ])('%s', (_name, rel) => {
    mk('kubepods/burstable/podsomeone-else');
    const want = mk(rel);
    expect(findPodCgroup(root, uid)).toBe(want);
  });

  test('a pod without a cgroup is undefined, and a uid prefix does not match', () => {
    mk(`kubepods/pod${uid}-other`);
    expect(findPodCgroup(root, uid)).toBeUndefined();
  });
});
