import type { V1Pod } from '@kubernetes/client-node';
import { describeNotReady } from './diagnose';

const pod = (name: string, ready: boolean, status: Partial<NonNullable<V1Pod['status']>> = {}): V1Pod => ({
  metadata: { namespace: 'demo', name },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }], ...status },
});

describe('describeNotReady: why a pod is not Ready, as describe and logs would say', () => {
  test('Ready pods say nothing', () => {
    expect(describeNotReady([{ pod: pod('a', true), events: [], logs: {} }])).toBe('');
  });

  test('a sidecar that cannot read the checkout: its state, restarts, last lines, Events, and the cause named', () => {
    const text = describeNotReady([
      {
        pod: pod('app-a-1', false, {
          initContainerStatuses: [
            { name: 'switchyard-proxy', image: 'proxy', imageID: '', ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } },
          ],
          containerStatuses: [{ name: 'app', image: 'app', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }],
        }),
        events: [
          { type: 'Warning', reason: 'BackOff', message: 'Back-off restarting failed container switchyard-proxy' },
          { type: 'Normal', reason: 'Started', message: 'Started container switchyard-proxy' },
          { type: 'Warning', reason: 'BackOff', message: 'Back-off restarting failed container switchyard-proxy' },
        ],
        logs: { 'switchyard-proxy': ["Error: EACCES: permission denied, open '/data/state.json'"], app: [] },
      },
    ]);
    expect(text.split('\n')).toEqual([
      'pod demo/app-a-1: Running, not Ready',
      '  container switchyard-proxy: waiting (CrashLoopBackOff), ready false, 4 restarts; last run terminated (Error, exit 1)',
      "    | Error: EACCES: permission denied, open '/data/state.json'",
      '  container app: waiting (PodInitializing), ready false, 0 restarts',
      '  event Normal Started: Started container switchyard-proxy',
      '  event Warning BackOff: Back-off restarting failed container switchyard-proxy (x2)',
      expect.stringMatching(/^likely cause: a container cannot read or write a file it needs: compare its runAsUser/),
    ]);
  });

  test("Node's 'Cannot find module' names the file the image lacks", () => {
    const text = describeNotReady([
      {
        pod: pod('app-b-2', false, { containerStatuses: [{ name: 'app', image: 'app', imageID: '', ready: false, restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff' } } }] }),
        events: [],
        // What Node prints: the error, a stack, and a trailer that pushes the error out of a short tail.
        logs: { app: ['node:internal/modules/cjs/loader:1210', "Error: Cannot find module '/app/dist/lab/src/apps/http.js'", '    at Module._resolveFilename (node:internal/modules/cjs/loader:1207:15)', "  code: 'MODULE_NOT_FOUND',", '  requireStack: []', '}', '', 'Node.js v20.20.2'] },
      },
    ]);
    expect(text).toContain("    | Error: Cannot find module '/app/dist/lab/src/apps/http.js'\n    | …\n    |   code: 'MODULE_NOT_FOUND',");
    expect(text).toContain('likely cause: a container cannot load /app/dist/lab/src/apps/http.js: its image lacks that file');
  });

  test('a sandbox switchyard-cni refused names the interceptor', () => {
    const text = describeNotReady([
      { pod: pod('app-b-1', false, { phase: 'Pending' }), events: [{ type: 'Warning', reason: 'FailedCreatePodSandBox', message: 'plugin type="switchyard-cni" failed (add): the Switchyard interceptor is not reachable' }], logs: {} },
    ]);
    expect(text).toContain('pod demo/app-b-1: Pending, not Ready');
    expect(text).toContain('likely cause: switchyard-cni refused the sandbox');
  });

  test('an image that is not on the node says so', () => {
    const text = describeNotReady([
      {
        pod: pod('app-c-1', false, { containerStatuses: [{ name: 'app', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImageNeverPull' } } }] }),
        events: [{ type: 'Warning', reason: 'ErrImageNeverPull', message: 'Container image "example.dev/x:1" is not present with pull policy of Never' }],
        logs: {},
      },
    ]);
    expect(text).toContain('  container app: waiting (ErrImageNeverPull), ready false, 0 restarts');
    expect(text).toContain('likely cause: an image is not on the node');
  });
});
