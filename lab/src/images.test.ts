import { LAB_IMAGES, ImageNotAvailable, containerArgv, imageRepository, inImage } from './images';

const sidecar = LAB_IMAGES['switchyard/proxy'].bin!['switchyard-sidecar'];

describe('lab images', () => {
  test('repository without registry port, tag or digest', () => {
    expect(imageRepository('registry.example:5000/team/app:1.2@sha256:abc')).toBe('registry.example:5000/team/app');
    expect(imageRepository('switchyard/proxy')).toBe('switchyard/proxy');
  });

  test("a bare program name the image has runs the image's program; anything else is left as written", () => {
    expect(inImage('switchyard/proxy:0.1.0', ['switchyard-sidecar', 'wait-ready', '--admin-port', '15021'])).toEqual([...sidecar, 'wait-ready', '--admin-port', '15021']);
    expect(inImage('switchyard/proxy', ['/bin/switchyard-sidecar'])).toEqual(['/bin/switchyard-sidecar']);
    expect(inImage('switchyard/proxy', ['sh', '-c', 'true'])).toEqual(['sh', '-c', 'true']);
    expect(inImage('busybox', ['switchyard-sidecar'])).toEqual(['switchyard-sidecar']);
    expect(inImage(undefined, [])).toEqual([]);
  });

  test('command + args, entrypoint + args, entrypoint + default args, and ImageNotAvailable', () => {
    expect(containerArgv({ image: 'x', command: ['sleep'], args: ['1'] })).toEqual(['sleep', '1']);
    expect(containerArgv({ image: 'ghcr.io/switchyard-dev/proxy:1', command: ['switchyard-sidecar'], args: ['--admin-port', '1'] })).toEqual([...sidecar, '--admin-port', '1']);
    expect(containerArgv({ image: 'switchyard-lab/pause' })).toEqual(['sleep', 'infinity']);
    expect(() => containerArgv({ image: 'nginx:1.27' })).toThrow(ImageNotAvailable);
    expect(() => containerArgv({ image: 'nginx:1.27' })).toThrow(/give the container a command/);
  });
});
