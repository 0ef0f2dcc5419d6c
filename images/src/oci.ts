/**
 * OCI image archives, written with nothing but tar and sha256.
 *
 * A layer is an uncompressed tar (its digest is also its diff ID). An image
 * is a config blob and a manifest blob over its layers; the archive is one
 * OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) holding
 * every image, so layers the images share are stored and imported once.
 * Each manifest in the index carries the image's full name in the
 * annotations `ctr images import` reads, so the archive imports into a
 * containerd with no registry.
 */
import { createHash } from 'crypto';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export interface Blob {
  digest: string; // sha256:<hex>
  size: number;
}

export interface Layer extends Blob {
  file: string;
}

export interface ImageConfig {
  user: string;
  entrypoint?: string[];
  cmd?: string[];
  env: string[];
  workingDir: string;
}

export interface Image {
  /** Full reference with tag, e.g. ghcr.io/switchyard-dev/webhook:0.1.0. */
  name: string;
  layers: Layer[];
  config: ImageConfig;
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return `sha256:${h.digest('hex')}`;
}

export function layerOf(file: string): Layer {
  return { file, digest: sha256File(file), size: fs.statSync(file).size };
}

/**
 * A reproducible layer from a staged directory: sorted names, mtime 0, owner
 * root unless the staged file says otherwise (ownership is staged with chown).
 */
export function tarDirectory(dir: string, out: string): Layer {
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '--format=posix', '--pax-option=delete=atime,delete=ctime', '-C', dir, '-cf', out, '.']);
  return layerOf(out);
}

function json(o: unknown): Buffer {
  return Buffer.from(JSON.stringify(o));
}

function digestOf(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Writes one OCI layout archive holding every image. Returns each image's manifest digest. */
export function writeArchive(images: Image[], out: string): Record<string, string> {
  const stage = fs.mkdtempSync(path.join(path.dirname(out), '.oci-'));
  try {
    const blobs = path.join(stage, 'blobs', 'sha256');
    fs.mkdirSync(blobs, { recursive: true });
    const put = (b: Buffer): Blob => {
      const digest = digestOf(b);
      fs.writeFileSync(path.join(blobs, digest.slice(7)), b);
      return { digest, size: b.length };
    };
    const manifests: object[] = [];
    const digests: Record<string, string> = {};
    for (const img of images) {
      for (const l of img.layers) {
        const dst = path.join(blobs, l.digest.slice(7));
        if (!fs.existsSync(dst)) fs.linkSync(l.file, dst);
      }
      const config = put(
        json({
          architecture: 'amd64',
          os: 'linux',
          config: {
            User: img.config.user,
            Env: img.config.env,
            WorkingDir: img.config.workingDir,
            ...(img.config.entrypoint ? { Entrypoint: img.config.entrypoint } : {}),
            ...(img.config.cmd ? { Cmd: img.config.cmd } : {}),
          },
          rootfs: { type: 'layers', diff_ids: img.layers.map((l) => l.digest) },
          history: img.layers.map(() => ({ created_by: 'switchyard images/build', created: '1970-01-01T00:00:00Z' })),
        }),
      );
      const manifest = put(
        json({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: img.layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
        }),
      );
      digests[img.name] = manifest.digest;
      manifests.push({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        ...manifest,
        platform: { architecture: 'amd64', os: 'linux' },
        annotations: { 'io.containerd.image.name': img.name, 'org.opencontainers.image.ref.name': img.name.slice(img.name.lastIndexOf(':') + 1) },
      });
    }
    fs.writeFileSync(path.join(stage, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(path.join(stage, 'index.json'), json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
    const tmp = `${out}.tmp`;
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', stage, '-cf', tmp, '.']);
    fs.renameSync(tmp, out);
    return digests;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
