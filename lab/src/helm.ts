/**
 * Helm, for the chart's tests: built from its Go module (lab/helm/go.mod,
 * pinned) by scripts/lab-build.sh and cached beside the lab's Kubernetes
 * binaries.
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../../native';

export const HELM_VERSION = /helm\.sh\/helm\/v3 (v[0-9.]+)/.exec(fs.readFileSync(path.join(projectRoot(), 'lab', 'helm', 'go.mod'), 'utf8'))![1];

export function helmBinary(): string {
  return path.join(process.env.SWITCHYARD_CACHE ?? '/var/cache/switchyard', `helm-${HELM_VERSION}`, 'helm');
}

/** What is missing to run helm here, or undefined. */
export function helmMissing(): string | undefined {
  return fs.existsSync(helmBinary()) ? undefined : `helm ${HELM_VERSION} is not built: run scripts/lab-build.sh`;
}

export const CHART_DIR = path.join(projectRoot(), 'charts', 'switchyard');
