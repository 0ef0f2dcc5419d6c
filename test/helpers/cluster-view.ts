/**
 * How the e2e tests look at a RealCluster: as a user does, with kubectl
 * (get, exec into the interceptor pods), and waiting on what kubectl shows
 * rather than on time.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { RealCluster } from '../../lab/src/realcluster';
import { eventually } from '../../lab/src/proc';

/** installNamespace: where Switchyard runs now (the kustomize install's, unless a test installs it elsewhere). */
export function clusterView(cluster: () => RealCluster, installNamespace: () => string = () => 'switchyard-system') {
  const k = (...args: string[]) => cluster().kubectl(args);
  const json = (...args: string[]) => JSON.parse(cluster().kubectl([...args, '-o', 'json']));
  /** The interceptor pod on a node ('' when there is none). */
  const agentOn = (node: string): string =>
    (json('get', 'pods', '-n', installNamespace(), '-l', 'app.kubernetes.io/name=switchyard-interceptor', '--field-selector', `spec.nodeName=${node}`).items as V1Pod[])[0]?.metadata?.name ?? '';
  /** `switchyard …` in that node's interceptor pod. */
  const onNode = (node: string, ...args: string[]) => k('exec', '-n', installNamespace(), agentOn(node), '-c', 'interceptor', '--', 'switchyard', ...args);
  const agentStatus = (node: string) => JSON.parse(onNode(node, 'status', '-o', 'json'));
  /** Exactly n Ready pods (none of them terminating) that match, once there are. */
  const readyPods = (ns: string, selector: string, n: number) =>
    eventually(`${n} Ready pods ${selector} in ${ns}`, () => {
      const pods = (json('get', 'pods', '-n', ns, '-l', selector).items as V1Pod[]).filter(
        (p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'),
      );
      return pods.length === n ? pods : undefined;
    }, 120_000);
  return { k, json, agentOn, onNode, agentStatus, readyPods };
}
