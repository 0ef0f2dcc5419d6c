/**
 * What each image holds. Every Node.js image is three layers:
 *
 *   base          Debian trixie's nodejs (Node 20) and libbpf1, extracted by
 *                 mmdebstrap from Debian packages (no shell, no package manager)
 *   node_modules  the lockfile's production dependencies (`npm ci --omit=dev`)
 *   app           the compiled files the entry points load (their require
 *                 graph, nothing else), native artefacts, and PATH wrappers
 *
 * so the first two are shared by every image and stored once per node.
 * pause is one static binary `FROM scratch`.
 */
import { existsSync, readFileSync } from 'fs';
import * as path from 'path';

/** The checkout: the nearest directory above this file (compiled or not) with the Makefile. */
function findRoot(dir = __dirname): string {
  for (; !existsSync(path.join(dir, 'Makefile')); dir = path.dirname(dir)) {
    if (dir === path.dirname(dir)) throw new Error(`images: no checkout (a directory with the Makefile) above ${__dirname}`);
  }
  return dir;
}

export const ROOT = findRoot();
export const VERSION: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

/** containerd's sandbox image on the lab's nodes. */
export const PAUSE_IMAGE = `docker.io/switchyard-lab/pause:${VERSION}`;

export const BASE = {
  suite: 'trixie',
  mirror: 'http://deb.debian.org/debian',
  packages: ['base-files', 'nodejs', 'libbpf1', 'ca-certificates'],
};

export interface NodeImage {
  kind: 'node';
  name: string;
  user: string;
  /** Compiled entry points (under dist/); their require graphs are the image's dist files. */
  entries: string[];
  /** Files copied from the checkout as they are (build artefacts). */
  files?: string[];
  /** Programs on PATH (/usr/local/bin): name → entry under dist/. */
  bin?: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
  /** A build marker in /app/BUILD (a rebuild that must differ). */
  buildId?: string;
}

export interface ScratchImage {
  kind: 'pause';
  name: string;
}

export type ImageSpec = NodeImage | ScratchImage;

const NODE = '/usr/bin/node';
const BPF_OBJECTS = [
  'sy_connect.bpf.o',
  'sy_connect.cookie.bpf.o',
  'sy_getsockopt.bpf.o',
  'sy_lb.bpf.o',
  'sy_skmsg.bpf.o',
  'sy_sockops.bpf.o',
  'sy_sockops.cookie.bpf.o',
  'sy_tc.bpf.o',
  'sy_nodeport.bpf.o',
].map((o) => `build/bpf/${o}`);

export const IMAGES: ImageSpec[] = [
  {
    kind: 'node',
    name: `ghcr.io/switchyard-dev/webhook:${VERSION}`,
    user: '65532:65532',
    entries: ['webhook/src/main.js'],
    entrypoint: [NODE, '/app/dist/webhook/src/main.js'],
  },
  {
    kind: 'node',
    name: `ghcr.io/switchyard-dev/interceptor:${VERSION}`,
    user: '0:0',
    entries: ['interceptor/src/agent/main.js', 'cli/main.js'],
    files: [...BPF_OBJECTS, 'build/native/switchyard.node', 'build/cni/switchyard-cni'],
    bin: { switchyard: 'cli/main.js' },
    entrypoint: [NODE, '/app/dist/interceptor/src/agent/main.js'],
  },
  {
    kind: 'node',
    name: `ghcr.io/switchyard-dev/proxy:${VERSION}`,
    user: '1337:1337',
    entries: ['sidecar/src/main.js'],
    files: ['build/native/origdst.node'],
    bin: { 'switchyard-sidecar': 'sidecar/src/main.js' },
    entrypoint: [NODE, '/app/dist/sidecar/src/main.js'],
  },
  {
    kind: 'node',
    name: `docker.io/switchyard-lab/apps:${VERSION}`,
    user: '1000:1000',
    entries: ['lab/src/apps/http-echo.js', 'lab/src/apps/http-get.js'],
    bin: { 'http-echo': 'lab/src/apps/http-echo.js', 'http-get': 'lab/src/apps/http-get.js' },
    entrypoint: [NODE, '/app/dist/lab/src/apps/http-echo.js'],
  },
  { kind: 'pause', name: PAUSE_IMAGE },
];
