// Feature dashboards: for each latent of an SAE, over an activation store's rows, its top-activating
// contexts (the tokens around the firing position, shaded by the latent's activation), a histogram of
// its nonzero activations, its density, and its logit effect: the top and bottom tokens of W_dec_j · W_U
// (the direction it writes, read by the unembedding without the final norm, as SAELens's dashboards do).
// One self-contained HTML page: no scripts from elsewhere, works offline.
import type { GpuContext } from '../gpu.js';
import type { Model } from '../model.js';
import { applySae } from './apply.js';
import type { SaeModel } from './sae.js';
import { readManifest, readSplit } from './store.js';

export interface FeatureCard {
  latent: number;
  /** null where no activation store was scanned (the viewer without --sae-store) */
  density: number | null;
  maxAct: number | null;
  /** counts of nonzero activations in 12 equal bins from 0 to maxAct */
  histogram: number[] | null;
  /** the latent on one given prompt (the viewer's), token by token */
  onPrompt?: { tokens: string[]; acts: number[] };
  top: { act: number; tokens: string[]; at: number; acts: number[] }[];
  logits: { top: { piece: string; value: number }[]; bottom: { piece: string; value: number }[] };
}

const TOP = 8, WINDOW = 12, BINS = 12;

export async function featureCards(gpu: GpuContext, sae: SaeModel, store: string, model: Model, o: { latents?: number[]; progress?: (done: number, total: number) => void } = {}): Promise<FeatureCard[]> {
  const m = readManifest(store);
  const data = [readSplit(store, m, false), readSplit(store, m, true)];
  const { dSae } = sae.dims;
  const latents = o.latents ?? Array.from({ length: dSae }, (_, j) => j);
  // rows -> (sequence, position)
  const where: { seq: number[]; pos: number }[][] = data.map((d) => d.tokens.flatMap((seq) => seq.map((_, pos) => ({ seq, pos }))));
  // two passes of the SAE over the rows, keeping only what the cards need (not every row's latents):
  // first each latent's density, largest activation and top rows; then its histogram (its bins need the
  // largest) and the activations at the top rows' neighbours
  // (progress: rows through the SAE, both passes)
  const rowsAll = data.reduce((n, d) => n + d.rows, 0);
  let scanned = 0;
  const scan = async (onRow: (split: number, row: number, acts: Float32Array, off: number) => void) => {
    for (const [split, d] of data.entries())
      await applySae(gpu, sae, d.x, (acts, _x, n, at) => {
        for (let r = 0; r < n; r++) onRow(split, at + r, acts, r * dSae);
        o.progress?.((scanned += n), 2 * rowsAll);
      });
  };
  const fired = new Float64Array(dSae), maxAct = new Float64Array(dSae);
  const best: { act: number; split: number; row: number }[][] = Array.from({ length: dSae }, () => []);
  await scan((split, row, acts, off) => {
    for (let j = 0; j < dSae; j++) {
      const a = acts[off + j]!;
      if (!(a > 0)) continue;
      fired[j]!++;
      maxAct[j] = Math.max(maxAct[j]!, a);
      const b = best[j]!;
      if (b.length < TOP || a > b[b.length - 1]!.act) {
        b.push({ act: a, split, row });
        b.sort((p, q) => q.act - p.act);
        if (b.length > TOP) b.pop();
      }
    }
  });
  const rowsSeen = data.reduce((n, d) => n + d.rows, 0);
  // the window around each top row: up to WINDOW tokens before it in its sequence, two after
  const windowOf = (split: number, row: number) => {
    const { seq, pos } = where[split]![row]!;
    const from = Math.max(0, pos - WINDOW + 1), to = Math.min(seq.length, pos + 3);
    return { seq, pos, from, rows: Array.from({ length: to - from }, (_, i) => row - pos + from + i) };
  };
  const need = new Map<string, Map<number, number>>(); // "split:row" -> latent -> activation
  for (const j of latents) for (const t of best[j]!) for (const r of windowOf(t.split, t.row).rows) {
    const k = `${t.split}:${r}`;
    if (!need.has(k)) need.set(k, new Map());
    need.get(k)!.set(j, 0);
  }
  const hists = new Map(latents.map((j) => [j, new Array<number>(BINS).fill(0)]));
  await scan((split, row, acts, off) => {
    for (const [j, h] of hists) {
      const a = acts[off + j]!;
      if (a > 0) h[Math.min(BINS - 1, Math.floor((a / maxAct[j]!) * BINS))]!++;
    }
    const n = need.get(`${split}:${row}`);
    if (n) for (const j of n.keys()) n.set(j, Math.max(0, acts[off + j]!));
  });
  const piece = (t: number) => model.tokenizer.piece(t);
  const wu = unembedding(model);
  return latents.map((j) => ({
    latent: j, density: fired[j]! / rowsSeen, maxAct: maxAct[j]!, histogram: hists.get(j)!,
    top: best[j]!.map(({ act, split, row }) => {
      const w = windowOf(split, row);
      return { act, at: w.pos - w.from, tokens: w.rows.map((_, i) => piece(w.seq[w.from + i]!)), acts: w.rows.map((r) => need.get(`${split}:${r}`)!.get(j)!) };
    }),
    logits: logitEffect(model, sae, j, wu),
  }));
}

/** W_U's values, [vocab, dim] (the embedding table where it is tied). */
const unembedding = (model: Model) => model.weightValues(model.config.tiedEmbeddings ? 'token_embd.weight' : 'output.weight');

/** A latent's logit effect: the 8 top and bottom tokens of W_dec_j · W_U (the input scale folded: the
 *  direction in the model's units). */
export function logitEffect(model: Model, sae: SaeModel, j: number, wu = unembedding(model)): FeatureCard['logits'] {
  const V = model.config.vocabSize, dIn = sae.dims.dIn;
  const piece = (t: number) => model.tokenizer.piece(t);
  const effect = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let i = 0; i < dIn; i++) s += (sae.params.W_dec[j * dIn + i]! / sae.inputScale) * wu[v * dIn + i]!;
    effect[v] = s;
  }
  const order = Array.from(effect.keys()).sort((a, b) => effect[b]! - effect[a]!);
  return { top: order.slice(0, 8).map((v) => ({ piece: piece(v), value: effect[v]! })), bottom: order.slice(-8).reverse().map((v) => ({ piece: piece(v), value: effect[v]! })) };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function featuresHtml(cards: readonly FeatureCard[], title: string): string {
  const card = (c: FeatureCard) => {
    const hist = c.histogram ?? [], top = c.maxAct ?? Math.max(0, ...(c.onPrompt?.acts ?? []));
    const hmax = Math.max(1, ...hist);
    // bars over axes: activation (0 .. the largest) along x, rows counted up y
    const L = 34, bars = hist.map((n, i) => `<rect x="${L + i * 14}" y="${4 + 40 - (40 * n) / hmax}" width="12" height="${(40 * n) / hmax}" fill="#4a7fb5"><title>${((i / BINS) * top).toFixed(2)}–${(((i + 1) / BINS) * top).toFixed(2)}: ${n}</title></rect>`).join('');
    const axes = `<g class="axes" font-size="9" fill="#555"><line x1="${L - 2}" y1="44" x2="${L + BINS * 14}" y2="44" stroke="#555"/><line x1="${L - 2}" y1="4" x2="${L - 2}" y2="44" stroke="#555"/>` +
      `<text x="${L - 4}" y="10" text-anchor="end">${hmax}</text><text x="${L - 4}" y="44" text-anchor="end">0</text>` +
      `<text x="${L}" y="56">0</text><text x="${L + BINS * 14}" y="56" text-anchor="end">${top.toFixed(2)}</text><text x="${L + (BINS * 14) / 2}" y="56" text-anchor="middle">activation (rows per bin)</text></g>`;
    const shade = (tokens: string[], acts: number[], at = -1) => tokens.map((p, i) => `<span class="tok${i === at ? ' at' : ''}" style="background: rgba(230, 110, 30, ${(acts[i]! / Math.max(top, 1e-9)).toFixed(3)})" title="${(acts[i] ?? 0).toFixed(3)}">${esc(p)}</span>`).join('');
    const ctx = c.top.map((t) => `<div class="ctx"><span class="act">${t.act.toFixed(2)}</span> ${shade(t.tokens, t.acts, t.at)}</div>`).join('');
    const stats = c.density === null || c.maxAct === null
      ? '<p>density, histogram and top contexts: unknown here (they need an activation store: tapir serve --sae-store DIR)</p>'
      : `<p>density ${(100 * c.density).toFixed(3)}% (log10 ${c.density > 0 ? Math.log10(c.density).toFixed(2) : '−∞'}), max activation ${c.maxAct.toFixed(3)}</p>
<svg width="${34 + BINS * 14 + 4}" height="60" role="img" aria-label="activation histogram">${axes}${bars}</svg>
<h3>top contexts</h3>${ctx || '<p>never fired</p>'}`;
    const list = (xs: { piece: string; value: number }[], cls: string) => xs.map((x) => `<span class="lg ${cls}">${esc(x.piece)} <small>${x.value.toFixed(2)}</small></span>`).join(' ');
    const prompt = c.onPrompt ? `<h3>on this prompt</h3><div class="ctx">${shade(c.onPrompt.tokens, c.onPrompt.acts)}</div>` : '';
    return `<section id="f${c.latent}"><h2>latent ${c.latent}</h2>${stats}${prompt}
<h3>logit effect (W_dec · W_U)</h3><p>up: ${list(c.logits.top, 'up')}</p><p>down: ${list(c.logits.bottom, 'down')}</p></section>`;
  };
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
section { border-top: 1px solid #ddd; padding: .5em 0; }
h2 { font-size: 1.1em; margin: .2em 0; } h3 { font-size: .95em; margin: .6em 0 .2em; color: #555; }
.ctx { font-family: ui-monospace, monospace; white-space: pre; margin: 2px 0; }
.tok { border-radius: 2px; } .tok.at { outline: 1px solid #b5501a; } .act { color: #888; display: inline-block; width: 4em; }
.lg { font-family: ui-monospace, monospace; padding: 0 4px; border-radius: 3px; } .up { background: #dcefdc; } .down { background: #f3dada; }
nav a { margin-right: .4em; }
</style></head><body><h1>${esc(title)}</h1>
<nav>${cards.map((c) => `<a href="#f${c.latent}">${c.latent}</a>`).join(' ')}</nav>
${cards.map(card).join('\n')}
</body></html>`;
}
