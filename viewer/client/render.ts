// The page's pictures, drawn from the JSON the engines return: heatmaps as tables (a cell's numbers in
// its tooltip and its data- attributes, which the end-to-end tests read), token chips, a rank chart.
import { colour } from '../../runtime/interp/heatmap.js';
import type { Attention, Lens, Patch } from './engine.js';
import type { GeneratedToken } from '../jobs.js';

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, string | number> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') el.className = String(v);
    else if (k === 'style') el.setAttribute('style', String(v));
    else if (k.startsWith('data-') || k === 'title' || k === 'role' || k === 'aria-label') el.setAttribute(k, String(v));
    else (el as unknown as Record<string, unknown>)[k] = v;
  }
  el.append(...children);
  return el;
}

/** A piece as the page shows it: spaces and newlines visible. */
export const showPiece = (p: string) => p.replace(/ /g, '␣').replace(/\n/g, '⏎') || '∅';
const pct = (p: number) => `${(100 * p).toFixed(1)}%`;
const ink = (bg: string) => { const m = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(bg); return m && Number(m[1]) * 0.3 + Number(m[2]) * 0.59 + Number(m[3]) * 0.11 < 130 ? '#fff' : '#111'; };

/** A generated token: its text, shaded by the probability the model gave it. */
export function tokenChip(t: GeneratedToken): HTMLElement {
  const bg = colour(t.prob, false);
  return h('span', { class: 'tok', 'data-id': t.id, 'data-prob': t.prob, title: `${JSON.stringify(t.piece)} (id ${t.id}): p = ${pct(t.prob)}`, style: `background:${bg};color:${ink(bg)}` }, t.text.replace(/\n/g, '⏎\n') || showPiece(t.piece));
}

/** Layers × positions: the top token of each cell, its probability (or the target's) as colour. */
export function lensTable(l: Lens): HTMLElement {
  const head = h('tr', {}, h('th', {}, 'layer \\ position'), ...l.pieces.map((p, i) => h('th', { title: `position ${i}` }, showPiece(p))));
  const rows = l.layers.map((layer, li) => h('tr', {}, h('th', {}, layer.hook.replace('.hook_resid_post', '')), ...layer.cells.map((c, pos) => {
    const value = c.target ? c.target.prob : c.top[0]!.prob;
    const bg = colour(value, false);
    const tip = c.top.map((t) => `${JSON.stringify(t.piece)} ${pct(t.prob)}`).join('\n') + (c.target ? `\ntarget rank ${c.target.rank}, ${pct(c.target.prob)}` : '') + `\nKL to final ${c.kl.toFixed(3)}`;
    return h('td', { 'data-layer': li, 'data-pos': pos, 'data-piece': c.top[0]!.piece, 'data-prob': c.top[0]!.prob, title: tip, style: `background:${bg};color:${ink(bg)}` }, showPiece(c.top[0]!.piece));
  })));
  return h('table', { class: 'heat lens', role: 'grid' }, h('thead', {}, head), h('tbody', {}, ...rows));
}

/** The target's rank at the last position, layer by layer (log scale: rank 0 at the top). */
export function rankChart(l: Lens): SVGSVGElement | null {
  if (!l.target) return null;
  const ranks = l.layers.map((layer) => layer.cells[layer.cells.length - 1]!.target!.rank);
  const W = 40 + 60 * ranks.length, H = 140, y = (r: number) => 20 + (100 * Math.log10(1 + r)) / Math.log10(1 + Math.max(10, ...ranks));
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', String(W));
  svg.setAttribute('height', String(H));
  svg.setAttribute('id', 'lens-rank');
  const pts = ranks.map((r, i) => `${40 + 60 * i},${y(r)}`).join(' ');
  svg.innerHTML = `<text x="4" y="14" font-size="11">rank of ${JSON.stringify(l.target.piece).replace(/</g, '&lt;')} at the last position (0 = top)</text>
<polyline points="${pts}" fill="none" stroke="#3b6fb6" stroke-width="2"/>` +
    ranks.map((r, i) => `<circle cx="${40 + 60 * i}" cy="${y(r)}" r="4" fill="#3b6fb6" data-layer="${i}" data-rank="${r}"><title>blocks.${i}: rank ${r}</title></circle><text x="${34 + 60 * i}" y="${H - 6}" font-size="10">${i}</text><text x="${46 + 60 * i}" y="${y(r) - 6}" font-size="10">${r}</text>`).join('');
  return svg;
}

/** One head's pattern: destination (query) rows × source (key) columns; keys after the query are masked. */
export function patternTable(a: Attention, head: number): HTMLElement {
  const rows = a.heads[head]!.map((row, q) => h('tr', {}, h('th', {}, showPiece(a.pieces[q]!)), ...row.map((w, k) => {
    if (k > q) return h('td', { class: 'masked', 'data-q': q, 'data-k': k, title: 'masked (a later position)' });
    const bg = colour(w, false);
    return h('td', { 'data-q': q, 'data-k': k, 'data-w': w, title: `${JSON.stringify(a.pieces[q])} → ${JSON.stringify(a.pieces[k])}: ${pct(w)}`, style: `background:${bg}` });
  })));
  const head_ = h('tr', {}, h('th', {}, 'dest \\ src'), ...a.pieces.map((p) => h('th', { class: 'vert' }, showPiece(p))));
  return h('table', { class: 'heat pattern' }, h('thead', {}, head_), h('tbody', {}, ...rows));
}

/** One heatmap per site kind: (patched − corrupted) / (clean − corrupted), diverging colours; for
 *  attribution patching its estimate, and beside it the exact sweep and their correlation if asked. */
export function patchTables(p: Patch): HTMLElement {
  const table = (s: Patch['sites'][number], how: string) => h('section', {}, h('h3', {}, `${s.site}${p.exact ? ` (${how})` : ''}`),
    ...(p.correlation && how === 'exact' ? [h('p', {}, `correlation of attribution with exact patching: ${p.correlation[s.site] === null ? 'undefined' : p.correlation[s.site]!.toFixed(4)}`)] : []),
    h('table', { class: 'heat patch', 'data-site': s.site, 'data-method': how },
      h('thead', {}, h('tr', {}, h('th', {}), ...s.cols.map((c) => h('th', {}, showPiece(c))))),
      h('tbody', {}, ...s.rows.map((row, i) => h('tr', {}, h('th', {}, row), ...s.scores[i]!.map((v, j) => {
        const bg = v === null ? '#eee' : colour(v, true);
        return h('td', { 'data-site': s.site, 'data-row': i, 'data-col': j, 'data-score': v ?? 'null', title: `${row} ${s.cols[j]}: score ${v === null ? 'undefined' : v.toFixed(4)}, effect ${s.effects[i]![j]!.toFixed(4)}`, style: `background:${bg};color:${ink(bg)}` }, v === null ? '' : v.toFixed(2));
      }))))));
  return h('div', {}, h('p', {}, `${p.method === 'attribution' ? 'attribution patching (first-order estimate); ' : ''}metric: clean ${p.clean.toFixed(4)}, corrupted ${p.corrupted.toFixed(4)} (target ${JSON.stringify(p.target.piece)}${p.distractor ? ` − ${JSON.stringify(p.distractor.piece)}` : ''})`),
    ...p.sites.flatMap((s, i) => [table(s, p.method), ...(p.exact ? [table(p.exact[i]!, 'exact')] : [])]));
}
