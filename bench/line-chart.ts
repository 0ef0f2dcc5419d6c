/**
 * Small SVG line charts, side by side: one panel per metric, x on a log
 * scale (Service counts), one line per peer. Dependency-free, like run.ts's
 * bar chart.
 */
export interface Panel {
  title: string;
  /** peer → [x, y] points */
  lines: Record<string, [number, number][]>;
  yLabel: string;
}

const COLOURS = ['#e53935', '#fb8c00', '#8e24aa', '#1e88e5', '#43a047', '#616161'];

export function lineCharts(title: string, panels: Panel[], colours: Record<string, string> = {}): string {
  const PW = 430;
  const H = 340;
  const [left, right, top, bottom] = [64, 16, 56, 70];
  const W = PW * panels.length;
  const peers = [...new Set(panels.flatMap((p) => Object.keys(p.lines)))];
  const colour = (peer: string) => colours[peer] ?? COLOURS[peers.indexOf(peer) % COLOURS.length];
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${title}</text>`,
  ];
  panels.forEach((p, i) => {
    const x0 = i * PW + left;
    const x1 = (i + 1) * PW - right;
    const pts = Object.values(p.lines).flat();
    const xs = pts.map(([x]) => Math.log10(Math.max(1, x)));
    const [xmin, xmax] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
    const ymax = Math.max(...pts.map(([, y]) => y).filter(Number.isFinite)) * 1.1 || 1;
    const X = (x: number) => x0 + ((Math.log10(Math.max(1, x)) - xmin) / (xmax - xmin)) * (x1 - x0);
    const Y = (y: number) => top + (H - top - bottom) * (1 - y / ymax);
    out.push(`<text x="${(x0 + x1) / 2}" y="40" text-anchor="middle" font-weight="bold">${p.title}</text>`);
    for (let k = 0; k <= 4; k++) {
      const v = (ymax / 4) * k;
      out.push(`<line x1="${x0}" x2="${x1}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/>`, `<text x="${x0 - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toPrecision(2)}</text>`);
    }
    for (const x of [...new Set(pts.map(([x]) => x))]) {
      out.push(`<text x="${X(x).toFixed(1)}" y="${H - bottom + 16}" text-anchor="middle">${x.toLocaleString('en-US')}</text>`);
    }
    out.push(`<text x="${(x0 + x1) / 2}" y="${H - bottom + 32}" text-anchor="middle" fill="#555">Services (log scale)</text>`);
    out.push(`<text transform="translate(${x0 - 48},${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#555">${p.yLabel}</text>`);
    for (const [peer, line] of Object.entries(p.lines)) {
      const ok = line.filter(([, y]) => Number.isFinite(y));
      out.push(`<polyline fill="none" stroke="${colour(peer)}" stroke-width="2" points="${ok.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of ok) out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${colour(peer)}"><title>${peer} at ${x}: ${y.toPrecision(4)}</title></circle>`);
    }
  });
  peers.forEach((peer, j) => {
    const lx = left + j * 170;
    out.push(`<rect x="${lx}" y="${H - 18}" width="12" height="12" fill="${colour(peer)}"/>`, `<text x="${lx + 16}" y="${H - 8}">${peer}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
