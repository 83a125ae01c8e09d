// An explanation as one self-contained HTML page (no scripts, fonts or requests: it works offline):
// the decision, the prompt with each word shaded by its attribution (numbers on hover), both methods
// side by side, the deletion curve, the layer and head bars, and the plain sentences.
import type { Explanation } from './explain.js';
import { colour, esc, heatmapSvg } from './heatmap.js';

const fmt = (x: number) => (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(3);

/** a line chart of the deletion curve: top-k words against random words */
function curveSvg(e: Explanation): string {
  const f = e.faithfulness, W = 420, H = 220, L = 50, B = 30, T = 20, R = 110;
  const ys = [...f.top, ...f.random, 0];
  const [lo, hi] = [Math.min(...ys), Math.max(...ys)];
  const x = (k: number) => L + ((k - 1) / Math.max(1, f.k.length - 1)) * (W - L - R);
  const y = (v: number) => T + (1 - (v - lo) / (hi - lo || 1)) * (H - T - B);
  const line = (vs: number[], c: string, name: string) =>
    `<polyline fill="none" stroke="${c}" stroke-width="2.5" points="${vs.map((v, i) => `${x(i + 1)},${y(v)}`).join(' ')}"/>` +
    vs.map((v, i) => `<circle cx="${x(i + 1)}" cy="${y(v)}" r="4" fill="${c}"><title>${name}, k = ${i + 1}: ${fmt(v)}</title></circle>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="deletion curve">
<line x1="${L}" y1="${y(0)}" x2="${W - R}" y2="${y(0)}" stroke="#999" stroke-dasharray="3 3"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>
<text x="${L - 6}" y="${y(hi) + 4}" text-anchor="end" font-size="11">${hi.toFixed(2)}</text><text x="${L - 6}" y="${y(lo) + 4}" text-anchor="end" font-size="11">${lo.toFixed(2)}</text>
${f.k.map((k) => `<text x="${x(k)}" y="${H - B + 15}" text-anchor="middle" font-size="11">${k}</text>`).join('')}
<text x="${(L + W - R) / 2}" y="${H - 2}" text-anchor="middle" font-size="12">k words occluded</text>
${line(f.random, '#888', 'random words (mean)')}${line(f.top, '#c0392b', 'top words')}
<text x="${W - R + 8}" y="${T + 12}" font-size="12" fill="#c0392b">top-k words</text><text x="${W - R + 8}" y="${T + 30}" font-size="12" fill="#666">random k words</text>
</svg>`;
}

/** horizontal bars, one per component, signed */
function barsSvg(parts: { name: string; value: number }[]): string {
  const W = 520, rowH = 20, L = 150, mid = L + (W - L) / 2, max = Math.max(1e-9, ...parts.map((p) => Math.abs(p.value)));
  const scale = (W - L) / 2 / max;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${parts.length * rowH + 10}" role="img" aria-label="direct logit attribution by component">
<line x1="${mid}" y1="0" x2="${mid}" y2="${parts.length * rowH + 10}" stroke="#333"/>
${parts.map((p, i) => {
    const w = Math.abs(p.value) * scale, x0 = p.value >= 0 ? mid : mid - w;
    return `<text x="${L - 6}" y="${i * rowH + 15}" text-anchor="end" font-size="12">${esc(p.name)}</text><rect x="${x0}" y="${i * rowH + 4}" width="${w}" height="${rowH - 6}" fill="${p.value >= 0 ? '#c0392b' : '#2e6fba'}"><title>${esc(p.name)}: ${fmt(p.value)}</title></rect>`;
  }).join('\n')}
</svg>`;
}

export function explanationHtml(e: Explanation): string {
  const max = Math.max(1e-9, ...e.words.map((w) => Math.abs(w.occlusion)));
  const shaded = e.words.map((w) => `<span class="w" style="background:${colour(w.occlusion / max, true)}" title="${esc(`${JSON.stringify(w.text)}: occlusion ${fmt(w.occlusion)}, erasure ${fmt(w.erasure)} (tokens ${w.positions.join(', ')})`)}">${esc(w.text)}</span>`).join('');
  const rows = e.words.map((w) => `<tr><td>${esc(JSON.stringify(w.text))}</td><td>${w.positions.join(', ')}</td><td style="background:${colour(w.occlusion / max, true)}">${fmt(w.occlusion)}</td><td>${fmt(w.erasure)}</td></tr>`).join('\n');
  const heads = heatmapSvg({
    title: 'direct logit attribution by head',
    rows: e.heads.map((_, l) => `blocks.${l}`), cols: (e.heads[0] ?? []).map((_, h) => `head ${h}`),
    values: e.heads.map((r) => r.map((v) => v / Math.max(1e-9, ...e.heads.flat().map(Math.abs)))), diverging: true,
    labels: e.heads.map((r) => r.map((v) => v.toFixed(2))), tooltips: e.heads.map((r, l) => r.map((v, h) => `blocks.${l} head ${h}: ${fmt(v)}`)),
  });
  const sum = e.components.reduce((s, c) => s + c.value, 0);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Why ${esc(JSON.stringify(e.answer.piece))}? — tapir explain</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.prompt { font: 17px/2.2 ui-monospace, monospace; white-space: pre-wrap; border: 1px solid #ddd; padding: .6em; }
.w { padding: .15em .05em; border-radius: 3px; } .answer { font-weight: bold; border-bottom: 2px solid #c0392b; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: .2em .6em; text-align: right; } td:first-child { text-align: left; }
.legend span { display: inline-block; width: 3em; text-align: center; font-size: 12px; }
.verdict { font-weight: bold; color: ${e.faithfulness.passes ? '#1e7b34' : '#b03a2e'}; }
</style></head><body>
<h1>Why ${esc(JSON.stringify(e.answer.piece))} and not ${esc(JSON.stringify(e.alternative.piece))}?</h1>
<p><b>Decision.</b> Probability of ${esc(JSON.stringify(e.answer.piece))}: ${e.answer.probability.toFixed(3)}; of ${esc(JSON.stringify(e.alternative.piece))}: ${e.alternative.probability.toFixed(3)}. Logit difference ${e.logitDiff.toFixed(3)} (${e.answer.logit.toFixed(3)} − ${e.alternative.logit.toFixed(3)}).</p>
<h2>In plain words</h2>
<ul>${e.sentences.map((s) => `<li>${esc(s)}</li>`).join('\n')}</ul>
<h2>Which words drove it</h2>
<p class="prompt">${shaded}<span class="answer">${esc(e.answer.piece)}</span></p>
<p class="legend">Occlusion: each word replaced by ${esc(JSON.stringify(e.baseline.piece))} and the prompt re-run; shading is how much the logit difference drops (red: the word supports ${esc(JSON.stringify(e.answer.piece))}, blue: it favours ${esc(JSON.stringify(e.alternative.piece))}).
${[-1, -0.5, 0, 0.5, 1].map((v) => `<span style="background:${colour(v, true)}">${(v * max).toFixed(2)}</span>`).join('')}</p>
<table><tr><th>word</th><th>tokens</th><th>occlusion (baseline ${esc(JSON.stringify(e.baseline.piece))})</th><th>erasure (embedding zeroed)</th></tr>
${rows}</table>
<h2>Is the attribution faithful? The deletion curve</h2>
<p>Occluding the k words ranked highest, against k words drawn at random (${e.faithfulness.draws} draws, seed ${e.faithfulness.seed}): the drop in the logit difference.
<span class="verdict">Top words ${fmt(e.faithfulness.topMean)} on average, random words ${fmt(e.faithfulness.randomMean)}: ${e.faithfulness.passes ? 'passes' : 'fails'}.</span></p>
${curveSvg(e)}
<h2>Where in the network</h2>
<p>Direct logit attribution with the final norm's scale frozen at ${e.finalScale.toFixed(4)}: what each part writes into the residual stream, read along the decision's direction. The parts sum to ${sum.toFixed(4)} (the logit difference: ${e.logitDiff.toFixed(4)}).</p>
${barsSvg(e.components)}
${heads}
</body></html>
`;
}
