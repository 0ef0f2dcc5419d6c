/**
 * The shape of a Pod as the injector reads and patches it, checked once at
 * the admission edge. A real apiserver decodes into a typed Pod before it
 * calls webhooks, so these only catch hand-made or broken requests; but for
 * those the answer must be a 400 naming the field, never a 500 or a patch
 * that RFC 6902 cannot apply (an add under a /spec that does not exist).
 */

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeName(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** The first problem with the object's shape, as "field must be X, not Y", or undefined. */
export function podShapeProblem(pod: unknown, where = 'request.object'): string | undefined {
  if (!isMap(pod)) return `${where} must be an object, not ${typeName(pod)}`;
  const { metadata, spec } = pod;
  if (metadata !== undefined) {
    if (!isMap(metadata)) return `${where}.metadata must be an object, not ${typeName(metadata)}`;
    for (const k of ['name', 'generateName', 'namespace'] as const) {
      if (metadata[k] !== undefined && typeof metadata[k] !== 'string') return `${where}.metadata.${k} must be a string, not ${typeName(metadata[k])}`;
    }
    for (const k of ['labels', 'annotations'] as const) {
      const m = metadata[k];
      if (m === undefined || m === null) continue; // null: absent, as a typed decode reads it
      if (!isMap(m)) return `${where}.metadata.${k} must be a map of strings, not ${typeName(m)}`;
      const bad = Object.entries(m).find(([, v]) => typeof v !== 'string');
      if (bad) return `${where}.metadata.${k}['${bad[0]}'] must be a string, not ${typeName(bad[1])}`;
    }
    const owners = metadata.ownerReferences;
    if (owners !== undefined && owners !== null && (!Array.isArray(owners) || !owners.every(isMap))) {
      return `${where}.metadata.ownerReferences must be a list of objects`;
    }
  }
  if (spec === undefined) return `${where}.spec is missing; a Pod needs spec.containers`;
  if (!isMap(spec)) return `${where}.spec must be an object, not ${typeName(spec)}`;
  if (spec.hostNetwork !== undefined && typeof spec.hostNetwork !== 'boolean') return `${where}.spec.hostNetwork must be a boolean, not ${typeName(spec.hostNetwork)}`;
  for (const k of ['containers', 'initContainers'] as const) {
    const list = spec[k];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) return `${where}.spec.${k} must be a list of containers, not ${typeName(list)}`;
    const i = list.findIndex((c) => !isMap(c) || typeof c.name !== 'string');
    if (i >= 0) return isMap(list[i]) ? `${where}.spec.${k}[${i}].name must be a string` : `${where}.spec.${k}[${i}] must be a container object, not ${typeName(list[i])}`;
  }
  return undefined;
}
