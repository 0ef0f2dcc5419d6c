/**
 * The compiled files an entry point loads: its relative `require()`s,
 * followed transitively. Packages (bare specifiers) come from the
 * node_modules layer and Node's own modules from the runtime, so only
 * relative paths are followed. A relative require that resolves to no file
 * is an error here, not a crash at the container's start.
 */
import * as fs from 'fs';
import * as path from 'path';

const REQUIRE = /\brequire\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

function resolve(from: string, spec: string): string {
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [base, `${base}.js`, `${base}.json`, path.join(base, 'index.js')]) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`${from} requires '${spec}', which is not built: run 'make ts'`);
}

export function requireGraph(entry: string): string[] {
  if (!fs.existsSync(entry)) throw new Error(`${entry} is not built: run 'make ts'`);
  const seen = new Set<string>([entry]);
  const todo = [entry];
  for (let file; (file = todo.pop()); ) {
    if (!file.endsWith('.js')) continue;
    for (const m of fs.readFileSync(file, 'utf8').matchAll(REQUIRE)) {
      const dep = resolve(file, m[1]);
      if (!seen.has(dep)) {
        seen.add(dep);
        todo.push(dep);
      }
    }
  }
  return [...seen].sort();
}
