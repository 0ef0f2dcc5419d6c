/**
 * Why pods did not become Ready, told the way `kubectl describe pod` and
 * `kubectl logs` would tell it: each container's state, restarts and last
 * log lines, and the pod's Events; plus a named cause where the evidence
 * points at one we know. Pure: the caller gathers pods, Events and logs.
 */
import type { CoreV1Event, V1ContainerState, V1Pod } from '@kubernetes/client-node';

export interface PodEvidence {
  pod: V1Pod;
  events: Pick<CoreV1Event, 'type' | 'reason' | 'message'>[];
  /** The last lines each container printed (a few dozen: causes are looked for in all of them), by container name. */
  logs: Record<string, string[]>;
}

const isReady = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

function stateText(s: V1ContainerState | undefined): string {
  if (!s) return 'no status yet';
  if (s.running) return 'running';
  if (s.waiting) return `waiting (${s.waiting.reason ?? 'no reason'})`;
  if (s.terminated) return `terminated (${s.terminated.reason ?? 'no reason'}, exit ${s.terminated.exitCode})`;
  return 'unknown';
}

/** The causes we have met, by the evidence they leave. */
const CAUSES: { test: RegExp; say: (m: RegExpExecArray) => string }[] = [
  {
    test: /Cannot find module '([^']+)'/,
    say: (m) => `a container cannot load ${m[1]}: its image lacks that file (images/ puts in each app layer what its entry points require: rebuild with make images)`,
  },
  {
    test: /EACCES|EROFS|permission denied|read-only file system/i,
    say: () => "a container cannot read or write a file it needs: compare its runAsUser and readOnlyRootFilesystem with the file (image files are root's and readable by all)",
  },
  { test: /ErrImageNeverPull|is not present with pull policy|image can't be pulled|ErrImagePull/, say: () => 'an image is not on the node: the lab imports images/ at start; a new image must be imported into every node' },
  { test: /switchyard-cni/i, say: () => "switchyard-cni refused the sandbox: see the Event, and the interceptor's log (kubectl logs -n switchyard-system ds/switchyard-interceptor)" },
];

/** The last few non-empty lines, led by the last error line if it scrolled out (a stack trace's trailer hides it). */
function shown(lines: string[], n = 4): string[] {
  const text = lines.filter((l) => l.trim() !== '');
  const last = text.slice(-n);
  const error = [...text].reverse().find((l) => /^\s*\w*Error\b/.test(l));
  return error && !last.includes(error) ? [error, '…', ...last] : last;
}

/** Text for the pods that are not Ready; empty when all are. */
export function describeNotReady(evidence: PodEvidence[]): string {
  const out: string[] = [];
  const causes = new Set<string>();
  for (const { pod, events, logs } of evidence) {
    if (isReady(pod)) continue;
    out.push(`pod ${pod.metadata?.namespace}/${pod.metadata?.name}: ${pod.status?.phase ?? 'no phase'}, not Ready`);
    const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
    for (const c of statuses) {
      const last = c.lastState?.terminated ? `; last run ${stateText(c.lastState)}` : '';
      out.push(`  container ${c.name}: ${stateText(c.state)}, ready ${c.ready ?? false}, ${c.restartCount ?? 0} restarts${last}`);
      const tail = shown(logs[c.name] ?? []);
      if (tail.length && (!c.ready || (c.restartCount ?? 0) > 0)) out.push(...tail.map((l) => `    | ${l}`));
    }
    // As kubectl does, one line per distinct event with how often it happened.
    const seen = new Map<string, number>();
    for (const e of events) {
      const line = `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`;
      const n = (seen.get(line) ?? 0) + 1;
      seen.delete(line); // ordered by each event's last occurrence
      seen.set(line, n);
    }
    for (const [line, n] of [...seen].slice(-5)) out.push(`  event ${line}${n > 1 ? ` (x${n})` : ''}`);
    const text = [...Object.values(logs).flat(), ...events.map((e) => e.message ?? '')].join('\n');
    for (const c of CAUSES) {
      const m = c.test.exec(text);
      if (m) causes.add(c.say(m));
    }
  }
  for (const c of causes) out.push(`likely cause: ${c}`);
  return out.join('\n');
}
