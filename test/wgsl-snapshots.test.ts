// Every kernel the stories260K plans dispatch (decode and prefill; fused, unfused, every hook tapped), as WGSL, against a snapshot in
// test/__snapshots__/wgsl/: a refactor that changes a kernel shows its diff here.
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/passes.js';
import { llama } from '../models/llama.js';
import { fragments, kernels } from '../ops/kernels.gen.js';
import { loadModelSource } from '../runtime/node/load.js';
import { GGUF } from './helpers/models.js';

const src = loadModelSource(GGUF);
const graph = llama({ ...src.config, contextLength: 256 });
const wgsl = new Map<string, string>();
const block = llama({ ...src.config, contextLength: 256 }, () => 'f32', { positions: 5 }); // a prefill pass
for (const [g, fuse, taps] of [[graph, true, []], [graph, false, []], [graph, true, Object.keys(graph.hooks)], [block, true, Object.keys(block.hooks)], [block, false, []]] as const)
  for (const [k, code] of compile(g, { kernels, fragments, maxBindingBytes: 1 << 27, fuse, taps }).wgsl!) wgsl.set(k, code);

describe('generated WGSL', () => {
  it.each([...wgsl.keys()].sort())('%s', async (name) => {
    await expect(wgsl.get(name)).toMatchFileSnapshot(`__snapshots__/wgsl/${name.replace(/\+/g, '__').replace(/:/g, '-')}.wgsl`);
  });
});
