/**
 * Where the Kubernetes API is and who we are to it: a client-node KubeConfig
 * from a kubeconfig file or the in-cluster service account, checked once at
 * start so that a bad file is one clear error, not a failure per request.
 *
 * client-node does the credential work client-go does: inline or file
 * certificates, static and file tokens, exec credential plugins (EKS's
 * `aws eks get-token`, GKE's `gke-gcloud-auth-plugin`) and auth providers;
 * the projected service-account token is re-read as it rotates.
 */
import * as fs from 'fs';
import * as path from 'path';
import { KubeConfig } from '@kubernetes/client-node';

export class KubeConfigError extends Error {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'KubeConfigError';
  }
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The current context of a kubeconfig file, every file it names readable. */
export function kubeconfigFromFile(file: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new KubeConfigError(file, `cannot read the kubeconfig: ${(e as Error).message}`);
  }
  return checked(kc, file);
}

/** The in-cluster service account, as client-go's rest.InClusterConfig reads it. */
export function kubeconfigInCluster(saDir = SA_DIR): KubeConfig {
  const what = 'in-cluster config';
  if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT)
    throw new KubeConfigError(what, 'KUBERNETES_SERVICE_HOST/PORT are not set (not in a pod?): give a kubeconfig file, or set KUBECONFIG');
  const token = path.join(saDir, 'token');
  if (!fs.existsSync(token)) throw new KubeConfigError(what, `no service-account token at ${token}: mount the service account or give a kubeconfig`);
  const kc = new KubeConfig();
  // client-node reads these two from the environment when they are set, and from the default paths otherwise.
  const env = { TOKEN_FILE_PATH: process.env.TOKEN_FILE_PATH, KUBERNETES_CA_FILE_PATH: process.env.KUBERNETES_CA_FILE_PATH };
  process.env.TOKEN_FILE_PATH = token;
  process.env.KUBERNETES_CA_FILE_PATH = path.join(saDir, 'ca.crt');
  try {
    kc.loadFromCluster();
  } finally {
    for (const [k, v] of Object.entries(env)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  }
  return checked(kc, what);
}

/** A kubeconfig file if one is named, the in-cluster service account otherwise. */
export function loadKubeConfig(file?: string): KubeConfig {
  return file ? kubeconfigFromFile(file) : kubeconfigInCluster();
}

/** An unauthenticated connection to a server URL (a local test API server). */
export function kubeconfigForServer(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server, skipTLSVerify: false }],
    users: [{ name: 'anonymous' }],
    contexts: [{ name: 'local', cluster: 'local', user: 'anonymous' }],
    currentContext: 'local',
  });
  return checked(kc, server);
}

function checked(kc: KubeConfig, source: string): KubeConfig {
  const context = kc.getCurrentContext();
  if (!context) throw new KubeConfigError(source, 'no current-context is set');
  const ctx = kc.getContextObject(context);
  if (!ctx) throw new KubeConfigError(source, `the current context '${context}' is not defined`);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeConfigError(source, `context '${context}' names cluster '${ctx.cluster}', which is not defined`);
  if (ctx.user && !kc.getCurrentUser()) throw new KubeConfigError(source, `context '${context}' names user '${ctx.user}', which is not defined`);
  if (typeof cluster.server !== 'string' || !cluster.server) throw new KubeConfigError(source, `cluster '${cluster.name}' has no server`);
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    throw new KubeConfigError(source, `cluster '${cluster.name}' has server '${cluster.server}', which is not a URL such as https://10.0.0.1:6443`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new KubeConfigError(source, `cluster '${cluster.name}' has server '${cluster.server}': only https:// and http:// are supported`);
  // Files are read per request by client-node: a missing one is said now, once.
  const user = kc.getCurrentUser();
  for (const [what, file] of [
    ['certificate-authority', cluster.caFile],
    ['client-certificate', user?.certFile],
    ['client-key', user?.keyFile],
  ] as const) {
    if (!file) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (e) {
      throw new KubeConfigError(source, `cannot read the ${what} file ${file}: ${(e as Error).message}`);
    }
  }
  return kc;
}
