/** One logfmt line per event on stdout: readable in `kubectl logs`, parseable by machines. */
export type Fields = Record<string, string | number | boolean | undefined>;

const quote = (v: string) => (/^[^\s"=]+$/.test(v) ? v : JSON.stringify(v));

export function formatLine(fields: Fields): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${quote(String(v))}`)
    .join(' ');
}

export type Logger = (level: 'info' | 'warn' | 'error', msg: string, fields?: Fields) => void;

export const stdoutLogger: Logger = (level, msg, fields = {}) =>
  process.stdout.write(formatLine({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
