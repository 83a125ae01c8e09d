// Attention patterns per layer and head, as TransformerLens gives them ([head, query, key], softmax
// over the keys so far, 0 past the query), and a picture of them: one destination × source heatmap
// per head, CircuitsVis-style, masked cells grey.
import { UsageError } from '../../compiler/errors.js';
import type { Model } from '../model.js';
import { gridSvgs, heatmapSvg } from './heatmap.js';

export interface LayerPatterns {
  layer: number;
  /** [head][query][key] */
  heads: number[][][];
}

export async function attentionPatterns(model: Model, tokens: number[], layers?: readonly number[]): Promise<{ pieces: string[]; layers: LayerPatterns[] }> {
  const L = model.config.nLayers;
  const which = layers ?? [...Array(L).keys()];
  for (const l of which) if (!Number.isInteger(l) || l < 0 || l >= L) throw new UsageError(`layer ${l} is out of range: the model has ${L} layers, blocks.0 .. blocks.${L - 1}`);
  const { cache } = await model.runWithCache(tokens, { hooks: which.map((l) => `blocks.${l}.attn.hook_pattern`) });
  const n = tokens.length, H = model.config.nHeads;
  return {
    pieces: tokens.map((t) => model.tokenizer.piece(t)),
    layers: which.map((layer) => {
      const data = cache.get(`blocks.${layer}.attn.hook_pattern`)!.data; // [1, head, query, key]
      return { layer, heads: Array.from({ length: H }, (_, h) => Array.from({ length: n }, (_, q) => Array.from(data.subarray((h * n + q) * n, (h * n + q + 1) * n)))) };
    }),
  };
}

/** One heatmap per (layer, head): rows are destinations (queries), columns sources (keys). */
export function patternsSvg(p: { pieces: string[]; layers: LayerPatterns[] }): string {
  const maps = p.layers.flatMap(({ layer, heads }) => heads.map((rows, h) => heatmapSvg({
    title: `blocks.${layer} head ${h}: destination × source`,
    rows: p.pieces.map((s, q) => `${q} ${JSON.stringify(s)}`), cols: p.pieces,
    values: rows.map((r, q) => r.map((v, k) => (k > q ? NaN : v))), // causal mask: grey
    labels: rows.map((r, q) => r.map((v, k) => (k > q ? '' : v.toFixed(2)))),
    tooltips: rows.map((r, q) => r.map((v, k) => `${JSON.stringify(p.pieces[q])} → ${JSON.stringify(p.pieces[k])}: ${k > q ? 'masked' : v.toFixed(4)}`)),
  })));
  return gridSvgs(maps, Math.min(4, maps.length));
}
