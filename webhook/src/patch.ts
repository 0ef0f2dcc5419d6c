/** JSON Patch (RFC 6902) operations and JSON Pointer (RFC 6901) escaping. */
export type Operation =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'test'; path: string; value: unknown };

/** One pointer segment: '~' -> '~0', '/' -> '~1' (in that order). */
export const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

export const pointer = (...segments: (string | number)[]) => '/' + segments.map((s) => escapePointer(String(s))).join('/');

/**
 * Sets keys in a string map at `base` (e.g. /metadata/labels): one add for
 * the whole map when it does not exist, otherwise one add per key (add
 * replaces an existing member).
 */
export function setKeys(base: string[], existing: Record<string, string> | undefined, values: Record<string, string>): Operation[] {
  if (!existing) return [{ op: 'add', path: pointer(...base), value: { ...values } }];
  return Object.entries(values).map(([k, v]) => ({ op: 'add' as const, path: pointer(...base, k), value: v }));
}
