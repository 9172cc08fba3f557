// Hand-drawn SVG charts: one or more series over time, every data point a <circle class="point">
// carrying its value (data-value) and a tooltip (<title>), gaps where a value is null.

import { s, h } from './dom.js';
import { tick } from './format.js';

const H = 200;
const M = { l: 62, r: 14, t: 10, b: 24 };

function niceMax(v, integer) {
  if (integer) {
    const m = niceMax(Math.max(v, 4));
    return Math.ceil(m / 4) * 4;
  }
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/**
 * name: data-chart; series: [{label, values: [{x (ms), y (number|null), tip}], cls?, line?}];
 * x0/x1: the x range (ms); width: the drawing's width (its height is 200); yFmt: an axis value as text; integer: whole-number ticks; bars: draw bars too.
 */
export function chart(name, { title, series, x0, x1, yFmt = String, bars = false, label, integer = false, width = 640 }) {
  const W = width;
  const all = series.flatMap((se) => se.values.filter((p) => p.y !== null && p.y !== undefined));
  const ymax = niceMax(Math.max(0, ...all.map((p) => p.y)), integer);
  if (x0 === undefined) x0 = Math.min(...series.flatMap((se) => se.values.map((p) => p.x)));
  if (x1 === undefined) x1 = Math.max(...series.flatMap((se) => se.values.map((p) => p.x)));
  if (!Number.isFinite(x0) || !Number.isFinite(x1)) x0 = x1 = Date.now();
  if (x1 <= x0) x1 = x0 + 1;
  const iw = W - M.l - M.r;
  const ih = H - M.t - M.b;
  const X = (x) => M.l + ((x - x0) / (x1 - x0)) * iw;
  const Y = (y) => M.t + ih - (y / ymax) * ih;
  const svg = s('svg.chart', {
    viewBox: `0 0 ${W} ${H}`,
    'data-chart': name,
    role: 'img',
    'aria-label': label || title || name,
  });
  const grid = s('g.grid');
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    grid.append(
      s('line', { x1: M.l, x2: W - M.r, y1: Y(v), y2: Y(v) }),
      s('text.ylab', { x: M.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, yFmt(v)),
    );
  }
  for (let i = 0; i <= 4; i++) {
    const x = x0 + ((x1 - x0) * i) / 4;
    grid.append(s('text.xlab', { x: X(x), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, tick(x, x1 - x0)));
  }
  svg.append(grid);
  series.forEach((se, i) => {
    const cls = se.cls || `s${i}`;
    const pts = se.values;
    if (bars) {
      const bw = Math.max(1, (iw / Math.max(pts.length, 1)) * 0.7);
      const g = s(`g.bars.${cls}`);
      for (const p of pts) if (p.y > 0) g.append(s('rect', { x: X(p.x) - bw / 2, y: Y(p.y), width: bw, height: Y(0) - Y(p.y) }));
      svg.append(g);
    }
    if (se.line !== false) {
      let d = '';
      let pen = false;
      for (const p of pts) {
        if (p.y === null || p.y === undefined) {
          pen = false;
          continue;
        }
        d += `${pen ? 'L' : 'M'}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`;
        pen = true;
      }
      if (d) svg.append(s(`path.line.${cls}`, { d }));
    }
    const g = s(`g.points.${cls}`);
    for (const p of pts) {
      if (p.y === null || p.y === undefined) continue;
      g.append(
        s('circle.point', { cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 3, 'data-value': p.y, 'data-x': p.x, 'data-series': se.key || i },
          s('title', p.tip || `${se.label}: ${yFmt(p.y)}`)),
      );
    }
    svg.append(g);
  });
  const legend = series.length > 1
    ? h('ul.legend', series.map((se, i) => h(`li.${se.cls || `s${i}`}`, h('span.swatch'), se.label)))
    : null;
  return h('figure.chart-box', h('figcaption', title), svg, legend);
}
