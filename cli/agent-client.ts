/** The node CLI's way to the agent: HTTP over its unix socket, with errors that say what is wrong on this node. */
import * as http from 'http';

/** A socket error as an operator reads it. */
export function socketError(e: NodeJS.ErrnoException, socketPath: string): Error {
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') return new Error(`the Switchyard interceptor is not running on this node (no socket at ${socketPath})`);
  if (e.code === 'EACCES') return new Error(`permission denied on ${socketPath}: run as root`);
  return e;
}

/** GET, and the JSON reply. */
export function agentGet(socketPath: string, urlPath: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    http
      // agent: false: no keep-alive pool, so a connection the agent idled out is never reused.
      .get({ socketPath, path: urlPath, agent: false }, (res) => {
        let data = '';
        res.on('data', (c) => (data += c)).on('end', () => {
          try {
            resolve({ status: res.statusCode!, body: JSON.parse(data) });
          } catch {
            reject(new Error(`the interceptor sent an unreadable reply: ${data.slice(0, 200)}`));
          }
        });
      })
      .on('error', (e: NodeJS.ErrnoException) => reject(socketError(e, socketPath)));
  });
}
