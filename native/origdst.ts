/**
 * The sidecar's addon (build/native/origdst.node, native/src/origdst/):
 * SO_ORIGINAL_DST and nothing else, without libbpf. Its path is resolved on
 * first use, relative to this file (dist/native/ → build/native/), so that a
 * proxy image holding only dist/ and build/native/origdst.node finds it, and
 * importing this module never throws.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface OrigDstAddon {
  /** getsockopt(SO_ORIGINAL_DST) (family 4) or IP6T_SO_ORIGINAL_DST (6); null when nothing redirected the socket. */
  originalDst(fd: number, family: 4 | 6): { address: string; port: number } | null;
}

let cached: OrigDstAddon | undefined;

export function origDstAddon(): OrigDstAddon {
  if (!cached) {
    const file = process.env.SWITCHYARD_ORIGDST_ADDON ?? path.resolve(__dirname, '..', '..', 'build', 'native', 'origdst.node');
    if (!fs.existsSync(file)) throw new Error(`the sidecar's addon is missing at ${file}: build it with 'make native'`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as OrigDstAddon;
  }
  return cached;
}
