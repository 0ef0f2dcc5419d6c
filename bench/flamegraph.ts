/**
 * perf samples → folded stacks → an SVG flame graph, and inclusive sample
 * counts per function for comparing two profiles. Written out (after
 * Brendan Gregg's stackcollapse and flamegraph) so that the bench needs
 * nothing beyond Debian's linux-perf.
 *
 *   perf script -F comm,ip,sym,dso ──foldPerfScript──▶ "comm;root;…;leaf" → samples
 *                                                   ├─▶ flameGraphSvg
 *                                                   └─▶ inclusive (per-function totals)
 */
export type Folded = Map<string, number>;

/** perf script with -F comm,ip,sym,dso: a header line per sample, then its frames leaf first, then a blank line. */
export function foldPerfScript(text: string): Folded {
  const out: Folded = new Map();
  let comm = '';
  let frames: string[] = [];
  const flush = () => {
    if (comm) {
      const key = [comm, ...frames.reverse()].join(';');
      out.set(key, (out.get(key) ?? 0) + 1);
    }
    comm = '';
    frames = [];
  };
  for (const line of text.split('\n')) {
    if (!line.trim()) {
      flush();
      continue;
    }
    if (!/^\s/.test(line)) {
      flush();
      comm = line.trim().split(/\s+/)[0].replace(/;/g, ':');
      continue;
    }
    const m = /^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(line);
    if (!m) continue;
    let sym = m[1].replace(/\+0x[0-9a-f]+$/, '').replace(/;/g, ':');
    const dso = m[2];
    if (sym === '[unknown]') sym = `[${dso.split('/').pop()}]`;
    frames.push(dso.includes('kernel.kallsyms') ? `${sym}_[k]` : sym.startsWith('bpf_prog_') ? `${sym}_[bpf]` : sym);
  }
  flush();
  return out;
}

/** Samples in which each function appears at least once (inclusive time). */
export function inclusive(folded: Folded): Map<string, number> {
  const out = new Map<string, number>();
  for (const [stack, n] of folded) {
    for (const f of new Set(stack.split(';').slice(1))) out.set(f, (out.get(f) ?? 0) + n);
  }
  return out;
}

interface Node {
  name: string;
  value: number;
  children: Map<string, Node>;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function colour(name: string): string {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const v = h % 60;
  if (name.endsWith('_[bpf]')) return `rgb(220,${40 + (v % 30)},${40 + (v % 30)})`;
  if (name.endsWith('_[k]')) return `rgb(230,${130 + v},${40 + (v % 30)})`;
  return `rgb(${80 + v},${150 + (v % 50)},${210})`;
}

/** A flame graph: the root at the bottom, width ∝ samples; kernel frames orange, BPF programs red, user space blue. */
export function flameGraphSvg(folded: Folded, title: string, subtitle = ''): string {
  const root: Node = { name: 'all', value: 0, children: new Map() };
  for (const [stack, n] of folded) {
    root.value += n;
    let node = root;
    for (const f of stack.split(';')) {
      let c = node.children.get(f);
      if (!c) node.children.set(f, (c = { name: f, value: 0, children: new Map() }));
      c.value += n;
      node = c;
    }
  }
  const depthOf = (n: Node): number => 1 + Math.max(0, ...[...n.children.values()].map(depthOf));
  const [W, rowH, top] = [1200, 16, 50];
  const H = top + depthOf(root) * rowH + 10;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="monospace" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fdfdf6"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-family="sans-serif" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${W / 2}" y="36" text-anchor="middle" font-family="sans-serif" fill="#555">${esc(subtitle)}</text>`,
  ];
  const scale = (W - 20) / Math.max(1, root.value);
  const draw = (n: Node, x: number, depth: number) => {
    const w = n.value * scale;
    if (w < 0.3) return;
    const y = H - 10 - (depth + 1) * rowH;
    const pct = ((100 * n.value) / root.value).toFixed(2);
    out.push(`<g><title>${esc(n.name)} (${n.value} samples, ${pct}%)</title><rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 1}" fill="${colour(n.name)}" rx="1"/>`);
    const chars = Math.floor((w - 4) / 6.6);
    if (chars >= 3) out.push(`<text x="${(x + 2).toFixed(1)}" y="${y + rowH - 4}">${esc(n.name.length > chars ? `${n.name.slice(0, chars - 2)}..` : n.name)}</text>`);
    out.push('</g>');
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(c, cx, depth + 1);
      cx += c.value * scale;
    }
  };
  draw(root, 10, 0);
  out.push('</svg>');
  return out.join('\n');
}
