// The viewer page: one prompt, and what the model does with it, in tabs. No framework: the page is a
// few panels filled from the engines' JSON (render.ts draws it).
import { ApiError, clientEngine, getJson, post, serverEngine, type Engine, type Info } from './engine.js';
import { h, lensTable, patchTables, patternTable, rankChart, showPiece, tokenChip } from './render.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const val = (id: string) => $<HTMLInputElement>(id).value;

function fail(where: string, e: unknown) {
  const msg = e instanceof ApiError ? e.message : `${(e as Error)?.message ?? e}`;
  $(where).replaceChildren(h('p', { class: 'error', role: 'alert' }, msg));
}

function status(text: string) { $('status').textContent = text; }

async function main() {
  const info = await getJson<Info>('/api/info');
  const client = new URLSearchParams(location.search).get('client') === '1';
  $('model').textContent = `${info.model}: ${info.config.layers} layers, dim ${info.config.dim}, ${info.config.heads} heads, vocab ${info.config.vocab}, context ${info.config.context}`;
  if (info.exposed) $('exposed').replaceChildren(`This viewer listens on ${info.host}: anyone who can reach this machine on the network can use it.`), $('exposed').hidden = false;
  let engine: Engine = serverEngine;
  if (client) {
    const bar = h('progress', { id: 'download', max: 1, value: 0 });
    $('where').replaceChildren('downloading the model into this page… ', bar);
    try {
      engine = await clientEngine(info, (done, total) => { bar.max = total || 1; bar.value = done; });
    } catch (e) {
      $('where').replaceChildren(h('span', { class: 'error' }, `cannot run in the page: ${(e as Error).message}`));
      return;
    }
  }
  $('where').textContent = `computing on ${engine.where}`;
  document.body.dataset.ready = client ? 'client' : 'server';

  // tabs
  for (const b of document.querySelectorAll<HTMLButtonElement>('nav button')) {
    b.addEventListener('click', () => {
      for (const x of document.querySelectorAll('nav button')) x.classList.toggle('on', x === b);
      for (const s of document.querySelectorAll<HTMLElement>('main > section')) s.hidden = s.id !== b.dataset.tab;
      if (b.dataset.tab === 'tab-graph') void showGraph();
    });
  }
  const layerSel = $<HTMLSelectElement>('attn-layer'), headSel = $<HTMLSelectElement>('attn-head');
  for (let l = 0; l < info.config.layers; l++) layerSel.append(h('option', { value: l }, `blocks.${l}`));
  for (let k = 0; k < info.config.heads; k++) headSel.append(h('option', { value: k }, `head ${k}`));
  for (const s of info.sites) $('sites').append(h('label', {}, h('input', { type: 'checkbox', name: 'site', value: s, ...(s === 'resid_pre' ? { checked: 'checked' } : {}) }), ` ${s}`));
  if (!info.sae) $('tab-sae').replaceChildren(h('p', {}, 'No SAE is loaded. Start the viewer with tapir serve --sae DIR to see its latents here.'));

  let attention: Awaited<ReturnType<Engine['attention']>> | undefined;
  const drawPattern = () => { if (attention) $('attn').replaceChildren(patternTable(attention, Number(headSel.value))); };
  headSel.addEventListener('change', drawPattern);
  const loadAttention = async () => {
    try {
      attention = await engine.attention({ prompt: val('prompt'), layer: Number(layerSel.value) });
      drawPattern();
    } catch (e) { fail('attn', e); }
  };
  layerSel.addEventListener('change', () => void loadAttention());

  // run: generation (streamed), then the lens and the attention of the prompt
  $('run').addEventListener('click', () => void (async () => {
    const prompt = val('prompt');
    $('run').setAttribute('disabled', '');
    $('generation').replaceChildren();
    for (const id of ['lens', 'lens-rank-box', 'attn']) $(id).replaceChildren(h('p', { class: 'wait' }, 'computing…'));
    try {
      status('generating…');
      const gen = $('generation');
      gen.append(h('span', { class: 'prompt' }, prompt));
      const r = await engine.generate({ prompt, maxNewTokens: Number(val('n')) }, (t) => gen.append(tokenChip(t)));
      gen.dataset.tokens = r.tokens.map((t) => t.id).join(',');
      status('logit lens…');
      const lens = await engine.lens({ prompt, ...(val('lens-target') ? { target: val('lens-target') } : {}) });
      $('lens').replaceChildren(lensTable(lens));
      const chart = rankChart(lens);
      $('lens-rank-box').replaceChildren(...(chart ? [chart] : [h('p', { class: 'hint' }, 'Give a target piece to follow its rank across layers.')]));
      status('attention…');
      await loadAttention();
      status('done');
      if (info.sae) void showSae(prompt);
    } catch (e) {
      fail('lens', e);
      status('');
    } finally {
      $('run').removeAttribute('disabled');
    }
  })());

  // activation patching: a streamed sweep with a progress bar
  $('patch-run').addEventListener('click', () => void (async () => {
    const sites = [...document.querySelectorAll<HTMLInputElement>('input[name=site]:checked')].map((x) => x.value);
    const bar = $<HTMLProgressElement>('patch-progress');
    bar.value = 0;
    bar.hidden = false;
    $('patch-results').replaceChildren(h('p', { class: 'wait' }, 'sweeping…'));
    $('patch-run').setAttribute('disabled', '');
    try {
      const how = val('patch-method'), method = how === 'exact' ? 'exact' : 'attribution';
      const p = await engine.patch({ clean: val('clean'), corrupt: val('corrupt'), target: val('patch-target'), ...(val('patch-distractor') ? { distractor: val('patch-distractor') } : {}), sites, method, ...(how === 'compare' ? { compareExact: true } : {}) },
        (done, total) => { bar.max = total; bar.value = done; $('patch-count').textContent = `${done} / ${total} patched runs`; });
      $('patch-results').replaceChildren(patchTables(p));
    } catch (e) {
      fail('patch-results', e);
    } finally {
      bar.hidden = true;
      $('patch-run').removeAttribute('disabled');
    }
  })());

  // explain: the report in a frame of its own (no scripts run there)
  $('explain-run').addEventListener('click', () => void (async () => {
    const bar = h('progress', { id: 'explain-progress', max: 1, value: 0 }), what = h('span', {}, 'explaining… ');
    $('explain-report').replaceChildren(h('p', { class: 'wait' }, what, bar));
    try {
      const r = await engine.explain({ prompt: val('explain-prompt') || val('prompt'), answer: val('explain-answer'), ...(val('explain-alt') ? { alternative: val('explain-alt') } : {}) },
        (phase, done, total) => { what.textContent = `${phase}: ${done} / ${total} re-runs `; bar.max = Math.max(1, total); bar.value = done; });
      const frame = h('iframe', { id: 'explain-frame', title: 'explain report' });
      frame.setAttribute('sandbox', '');
      frame.srcdoc = r.html;
      $('explain-report').replaceChildren(h('p', { class: 'summary' }, r.explanation.sentences.join(' ')), frame);
    } catch (e) { fail('explain-report', e); }
  })());

  // the compiled graph, fused or not, zoomed with the wheel and dragged to pan
  let zoom = 1, dx = 0, dy = 0;
  const view = $('graph-view'), canvas = $('graph');
  const place = () => { canvas.style.transform = `translate(${dx}px, ${dy}px) scale(${zoom})`; };
  const showGraph = async () => {
    const fused = $<HTMLInputElement>('graph-fused').checked;
    canvas.replaceChildren(h('p', { class: 'wait' }, 'drawing…'));
    const res = await fetch(`/api/graph?fused=${fused ? 1 : 0}`);
    canvas.innerHTML = await res.text(); // our server's SVG (graphviz output: no scripts)
    canvas.dataset.fused = String(fused);
    zoom = Math.min(1, view.clientWidth / Math.max(1, canvas.scrollWidth)); dx = dy = 0; place();
  };
  $('graph-fused').addEventListener('change', () => void showGraph());
  view.addEventListener('wheel', (e) => { e.preventDefault(); zoom = Math.max(0.05, Math.min(8, zoom * Math.exp(-e.deltaY / 400))); place(); }, { passive: false });
  let drag: { x: number; y: number } | undefined;
  view.addEventListener('pointerdown', (e) => { drag = { x: e.clientX - dx, y: e.clientY - dy }; });
  window.addEventListener('pointerup', () => { drag = undefined; });
  view.addEventListener('pointermove', (e) => { if (drag) { dx = e.clientX - drag.x; dy = e.clientY - drag.y; place(); } });
  $('zoom-in').addEventListener('click', () => { zoom *= 1.25; place(); });
  $('zoom-out').addEventListener('click', () => { zoom /= 1.25; place(); });

  // SAE latents of each token (computed by the server, which holds the SAE); a latent's dashboard on click
  async function showSae(prompt: string) {
    const box = $('sae-tokens');
    box.replaceChildren(h('p', { class: 'wait' }, 'SAE…'));
    try {
      const r = await post<{ hook: string; pieces: string[]; latents: { latent: number; act: number }[][] }>('/api/sae', { prompt });
      box.replaceChildren(h('p', {}, `latents of the SAE at ${r.hook}, strongest first; click one for its dashboard`),
        ...r.pieces.map((p, i) => h('div', { class: 'sae-row' }, h('span', { class: 'piece' }, showPiece(p)), ...r.latents[i]!.map((x) => {
          const b = h('button', { class: 'latent', 'data-latent': x.latent, title: `activation ${x.act.toFixed(3)}` }, `${x.latent} (${x.act.toFixed(2)})`);
          b.addEventListener('click', () => void showFeature(prompt, x.latent));
          return b;
        }))));
    } catch (e) { fail('sae-tokens', e); }
  }
  async function showFeature(prompt: string, latent: number) {
    try {
      const r = await post<{ html: string }>('/api/sae/feature', { prompt, latent });
      const frame = h('iframe', { id: 'sae-frame', title: `latent ${latent}` });
      frame.setAttribute('sandbox', '');
      frame.srcdoc = r.html;
      $('sae-card').replaceChildren(frame);
    } catch (e) { fail('sae-card', e); }
  }
}

void main().catch((e) => { document.body.prepend(h('p', { class: 'error', role: 'alert' }, `the viewer could not start: ${(e as Error).message}`)); });
