/**
 * Registration records, one JSON file per sandbox, written atomically. They
 * outlive the agent process so that a restarted agent can answer DEL for a
 * netns that no longer exists and can reconcile the maps against the API.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Interception } from '../../../api/interception';

export interface PodRecord {
  containerId: string;
  namespace: string;
  name: string;
  uid: string;
  netnsPath: string;
  ifname: string;
  ips: string[];
  cgroupPath?: string;
  netnsCookie: string; // bigint as text
  /** The agent created the interface's clsact qdisc (it had none): uninstall removes it again. */
  tcCreatedQdisc?: boolean;
  interception: Interception;
  registeredAt: string;
}

const SAFE = /^[A-Za-z0-9_.-]+$/;

export class RecordStore {
  private readonly records = new Map<string, PodRecord>();

  constructor(private readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of fs.readdirSync(dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as PodRecord;
        this.records.set(r.containerId, r);
      } catch {
        fs.rmSync(path.join(dir, f), { force: true }); // a torn write from a crash: reconcile re-creates it
      }
    }
  }

  private file(containerId: string): string {
    if (!SAFE.test(containerId)) throw new Error(`container id '${containerId}' has characters that are not allowed in a file name`);
    return path.join(this.dir, `${containerId}.json`);
  }

  put(r: PodRecord): void {
    const f = this.file(r.containerId);
    fs.writeFileSync(`${f}.tmp`, JSON.stringify(r), { mode: 0o600 });
    fs.renameSync(`${f}.tmp`, f);
    this.records.set(r.containerId, r);
  }

  delete(containerId: string): void {
    fs.rmSync(this.file(containerId), { force: true });
    this.records.delete(containerId);
  }

  get(containerId: string): PodRecord | undefined {
    return this.records.get(containerId);
  }

  byUid(uid: string): PodRecord[] {
    return this.all().filter((r) => r.uid === uid);
  }

  byPod(namespace: string, name: string): PodRecord | undefined {
    return this.all().find((r) => r.namespace === namespace && r.name === name);
  }

  all(): PodRecord[] {
    return [...this.records.values()];
  }
}
