/** Parses the sidecar's access-log lines: '<time> <direction> key=value ...'. */
export interface AccessLine {
  direction: string;
  src: string;
  dst: string;
  sent: number;
  received: number;
  result: string;
}

export function parseAccess(line: string): AccessLine | null {
  const m = /^\S+ (outbound|inbound) (.*)$/.exec(line);
  if (!m) return null;
  const kv = Object.fromEntries(
    m[2].split(' ').flatMap((f) => {
      const i = f.indexOf('=');
      return i > 0 ? [[f.slice(0, i), f.slice(i + 1)]] : [];
    }),
  );
  return { direction: m[1], src: kv.src, dst: kv.dst, sent: Number(kv.sent), received: Number(kv.received), result: kv.result };
}

export const accessMatching = (pred: (a: AccessLine) => boolean) => (line: string) => {
  const a = parseAccess(line);
  return a !== null && pred(a);
};
