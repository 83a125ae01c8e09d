// A layer × position heatmap as SVG: token strings on the axes, a value per cell as colour, a label
// written in the cell, and the details in a <title> tooltip. Plain SVG, no scripts, no fonts to load.
export interface HeatmapSpec {
  title: string;
  rows: string[];
  cols: string[];
  /** [row][col] in [0, 1] for a sequential scale, or [-1, 1] with `diverging` */
  values: number[][];
  labels?: string[][];
  tooltips?: string[][];
  diverging?: boolean;
}

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** a piece as it reads on an axis: newlines escaped, spaces visible (' Lily' -> '␣Lily') */
export const show = (s: string) => JSON.stringify(s).slice(1, -1).replace(/ /g, '\u2423');

export function colour(v: number, diverging: boolean): string {
  if (!Number.isFinite(v)) return '#cccccc';
  if (diverging) {
    // blue (-1) – white (0) – red (+1)
    const t = Math.max(-1, Math.min(1, v));
    const [r, g, b] = t >= 0 ? [255, 255 - 200 * t, 255 - 200 * t] : [255 + 200 * t, 255 + 200 * t, 255];
    return `rgb(${Math.round(r)},${Math.round(g)},${Math.round(b)})`;
  }
  const t = Math.max(0, Math.min(1, v));
  return `rgb(${Math.round(255 - 205 * t)},${Math.round(255 - 130 * t)},${Math.round(255 - 40 * t)})`;
}

export function heatmapSvg(h: HeatmapSpec): string {
  const cw = 64, ch = 26, left = 190, top = 110;
  const w = Math.max(left + cw * h.cols.length + 20, 420), ht = top + ch * h.rows.length + 40;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${ht}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${esc(h.title)}</text>`, legend(!!h.diverging, 10, 34)];
  h.cols.forEach((c, j) => out.push(`<text transform="translate(${left + cw * j + cw / 2},${top - 8}) rotate(-45)" text-anchor="start">${esc(show(c))}</text>`));
  h.rows.forEach((r, i) => {
    out.push(`<text x="${left - 8}" y="${top + ch * i + ch / 2 + 4}" text-anchor="end">${esc(r)}</text>`);
    h.cols.forEach((_, j) => {
      const v = h.values[i]![j]!;
      const x = left + cw * j, y = top + ch * i;
      out.push(`<g><rect x="${x}" y="${y}" width="${cw - 1}" height="${ch - 1}" fill="${colour(v, !!h.diverging)}"/>` +
        (h.labels ? `<text x="${x + cw / 2}" y="${y + ch / 2 + 4}" text-anchor="middle" font-size="10">${esc(show(h.labels[i]![j]!).slice(0, 9))}</text>` : '') +
        `<title>${esc(h.tooltips?.[i]![j] ?? String(v))}</title></g>`);
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The colour scale: its steps from the lowest value to the highest, the ends and middle labelled. */
function legend(diverging: boolean, x: number, y: number): string {
  const steps = 20, sw = 12, lo = diverging ? -1 : 0;
  const cells = Array.from({ length: steps + 1 }, (_, i) => lo + ((1 - lo) * i) / steps)
    .map((v, i) => `<rect x="${x + 60 + i * sw}" y="${y}" width="${sw}" height="10" fill="${colour(v, diverging)}"/>`);
  const at = (v: number) => x + 60 + ((v - lo) / (1 - lo)) * steps * sw + sw / 2;
  const ticks = (diverging ? [-1, 0, 1] : [0, 0.5, 1]).map((v) => `<text x="${at(v)}" y="${y + 22}" text-anchor="middle" font-size="9">${v}</text>`);
  return `<g class="legend"><text x="${x}" y="${y + 9}" font-size="10">colour scale</text>${cells.join('')}${ticks.join('')}</g>`;
}

/** Several SVG pictures one above the other, in one SVG. */
export const stackSvgs = (svgs: readonly string[]) => gridSvgs(svgs, 1);

/** Several SVG pictures in a grid of `columns`, row by row, in one SVG. */
export function gridSvgs(svgs: readonly string[], columns: number): string {
  const size = (svg: string) => [Number(/width="(\d+)"/.exec(svg)![1]), Number(/height="(\d+)"/.exec(svg)![1])] as const;
  const cellW = Math.max(...svgs.map((s) => size(s)[0]));
  let y = 0, width = 0, rowH = 0;
  const parts = svgs.map((svg, i) => {
    const [w, h] = size(svg);
    const col = i % columns;
    if (col === 0 && i > 0) { y += rowH; rowH = 0; }
    const inner = svg.replace(/^<svg[^>]*>/, '').replace(/<\/svg>\s*$/, '');
    rowH = Math.max(rowH, h);
    width = Math.max(width, col * cellW + w);
    return `<g transform="translate(${col * cellW},${y})">${inner}</g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + rowH}" font-family="Helvetica, Arial, sans-serif" font-size="11">\n${parts.join('\n')}\n</svg>\n`;
}
