/**
 * The lab pulls no images: there is no container runtime here. A container
 * runs as a process on this machine, with its `command` and `args` applied
 * the Kubernetes way to an image's entrypoint from this table:
 *
 *   command set      → command + args: command[0] from the image's own
 *                      programs (`bin`), else from the host's PATH (any image)
 *   image in table   → the table's entrypoint + args (or + the default args)
 *   otherwise        → the container cannot start: ImageNotAvailable
 *
 * Exec probes, lifecycle hooks and `exec()` resolve their argv[0] the same way,
 * so the webhook's classic-mode hook `switchyard-sidecar wait-ready` runs the
 * program the proxy image would have on its PATH.
 */
import * as path from 'path';
import { projectRoot } from '../../native';

interface LabImage {
  /** ENTRYPOINT, as absolute argv. */
  entrypoint: string[];
  /** CMD: used when the container gives no args. */
  cmd?: string[];
  /** Programs on the image's PATH, by name, as absolute argv. */
  bin?: Record<string, string[]>;
  what: string;
}

function nodeScript(rel: string): string[] {
  return [process.execPath, path.join(projectRoot(), 'dist', rel)];
}

/** Image repositories (no tag or digest) the lab can run. */
export const LAB_IMAGES: Record<string, LabImage> = {
  'switchyard/proxy': { entrypoint: nodeScript('sidecar/src/main.js'), bin: { 'switchyard-sidecar': nodeScript('sidecar/src/main.js') }, what: 'the reference sidecar (sidecar/), the injector default' },
  'ghcr.io/switchyard-dev/proxy': { entrypoint: nodeScript('sidecar/src/main.js'), bin: { 'switchyard-sidecar': nodeScript('sidecar/src/main.js') }, what: 'the reference sidecar as manifests/config.yaml names it' },
  'switchyard-lab/http-echo': { entrypoint: nodeScript('lab/src/apps/http-echo.js'), what: 'an HTTP server that answers with its pod name (lab/src/apps/http-echo.ts)' },
  'switchyard-lab/http-get': { entrypoint: nodeScript('lab/src/apps/http-get.js'), what: 'one HTTP GET, then exit (lab/src/apps/http-get.ts)' },
  'docker.io/switchyard-lab/apps': {
    entrypoint: nodeScript('lab/src/apps/http-echo.js'),
    bin: { 'http-echo': nodeScript('lab/src/apps/http-echo.js'), 'http-get': nodeScript('lab/src/apps/http-get.js') },
    what: 'the apps image the real nodes run (images/): http-echo, with http-get on its PATH',
  },
  'switchyard-lab/pause': { entrypoint: ['sleep', 'infinity'], what: 'does nothing until stopped' },
};

/** registry.example:5000/team/app:1.2@sha256:… → registry.example:5000/team/app */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0];
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

export class ImageNotAvailable extends Error {
  readonly reason = 'ImageNotAvailable';
}

/** argv to run in a container of this image: a bare argv[0] the image provides becomes that program. */
export function inImage(image: string | undefined, argv: string[]): string[] {
  const [cmd, ...rest] = argv;
  const program = cmd !== undefined && !cmd.includes('/') ? LAB_IMAGES[imageRepository(image ?? '')]?.bin?.[cmd] : undefined;
  return program ? [...program, ...rest] : argv;
}

/** The argv a container runs, or why it cannot run here. */
export function containerArgv(c: { image?: string; command?: string[]; args?: string[] }): string[] {
  if (c.command?.length) return inImage(c.image, [...c.command, ...(c.args ?? [])]);
  const img = LAB_IMAGES[imageRepository(c.image ?? '')];
  if (!img) {
    throw new ImageNotAvailable(
      `the lab runs no images and has no entrypoint for ${JSON.stringify(c.image ?? '')}: give the container a command, ` +
        `or use one of ${Object.keys(LAB_IMAGES).join(', ')}`,
    );
  }
  return [...img.entrypoint, ...(c.args ?? img.cmd ?? [])];
}
