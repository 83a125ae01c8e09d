// Pipelines created at load (runtime/ahead.ts): the two-layer variants Model.create compiles name every
// pipeline that the default workloads later dispatch on the real model (run-with-cache of every
// resid_post, the lens, resid_pre patching, prefill and every position's logits), small and large
// blocks alike; so a fresh process's first such run creates none.
import { describe, expect, it } from 'vitest';
import { Model, dtypesOf } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { aheadPipelines } from '../runtime/ahead.js';
import type { Executor } from '../runtime/executor.js';
import { pipelineKey, planPipelines } from '../runtime/pipelines.js';
import { logitLens } from '../runtime/interp/lens.js';
import { activationPatching } from '../runtime/interp/patching.js';
import { GGUF } from './helpers/models.js';
import { compile } from '../compiler/passes.js';
import { target } from '../compiler/target.js';
import { OPSET } from '../ops/index.js';
import { lensHead, llama } from '../models/llama.js';
import { synthModel } from '../runtime/synth/synth.js';
import type { GpuContext } from '../runtime/gpu.js';

describe('pipelines ahead of the workloads', () => {
  it('the pipelines made at load cover every one the default workloads dispatch, for short and long prompts', async () => {
    const src = loadModelSource(GGUF);
    const model = await Model.create(src, { contextLength: 128 });
    try {
      const gpu = model.executor.gpu;
      const keys = (ex: Executor) => planPipelines(ex.plan).map((w) => ({ kernel: w.kernel.name, key: pipelineKey(gpu, w.kernel, w.values).key }));
      const ahead = new Set(aheadPipelines(model.config, dtypesOf(src.weights), model['target'], {}, model.blockSize).map((w) => pipelineKey(gpu, w.kernel, w.values).key));
      const known = new Set([...ahead, ...keys(model.executor).map((k) => k.key)]);
      const tok = model.tokenizer;
      for (const text of ['Once upon a time', 'Once upon a time, there was a little girl named Lily. She liked to play in the park with her friends and her dog, and one day']) {
        const ids = tok.encode(text);
        await model.runWithCache(ids, { hooks: 'blocks.*.hook_resid_post', logits: 'none' });
        await model.logits(ids);
        await model.prefill(ids, 'next');
        await logitLens(model, ids, { target: tok.idOf(' Lily')!, top: 5 });
        await activationPatching(model, ids, ids.map((t, i) => (i === 2 ? tok.idOf(' day')! : t)), { target: tok.idOf(' Lily')!, sites: ['resid_pre'] });
      }
      const used = [...model['tappedExecutors'].values(), ...model['lensExecutors'].values()].flatMap(keys);
      expect(used.length).toBeGreaterThan(20);
      // kernels of both sizes of matrix product were used
      expect(used.some((u) => u.kernel.startsWith('matmulSmallKernel')) && used.some((u) => u.kernel.startsWith('matmulKernel'))).toBe(true);
      expect(used.filter((u) => !known.has(u.key)).map((u) => u.kernel)).toEqual([]);
    } finally {
      model.dispose();
    }
  });

  it.each([true, false])("with tensor cores (%s), they cover the 1B shape's workloads too: every tile the products choose (compiled only)", (matrices) => {
    const config = { ...synthModel('llama-3.2-1b', 'f16').config, contextLength: 4096 };
    const dt = () => 'f16' as const, t = target({ maxBindingBytes: 2 ** 31 - 4, maxStorageBuffers: 10, matrices });
    const gpu = { features: ['subgroups'] } as unknown as GpuContext; // (pipelineKey reads only the features)
    const key = (w: ReturnType<typeof planPipelines>[number]) => pipelineKey(gpu, w.kernel, w.values).key;
    const ahead = new Set(aheadPipelines(config, dt, t, {}, 256).map(key));
    const L = config.nLayers, every = (h: string) => Array.from({ length: L }, (_, l) => `blocks.${l}.${h}`);
    const plans = [
      compile(llama(config, dt, { positions: 16, head: 'last' }), OPSET, t, { taps: every('hook_resid_post') }).plan!, // the lens's forward
      compile(llama(config, dt, { positions: 128, head: 'last' }), OPSET, t, { taps: every('hook_resid_post') }).plan!, // cache128
      compile(llama(config, dt, { positions: 32, batch: 8, head: 'last' }), OPSET, t, { taps: every('hook_resid_post') }).plan!, // cache8x128
      compile(llama(config, dt, { positions: 256, head: 'last' }), OPSET, t).plan!, // a prefill block
      compile(llama(config, dt, { positions: 16, batch: 16, head: 'last', pick: 2 }), OPSET, t, { taps: every('hook_resid_pre') }).plan!, // patching
      compile(lensHead(config, dt, { layers: L, positions: 16, top: 5 }), OPSET, t).plan!, // the lens head, 256 rows
    ];
    const used = plans.flatMap(planPipelines);
    const shapes = new Set(used.filter((w) => w.kernel.name === 'matmulTensorKernel').map((w) => w.values.shape));
    const products = new Set(used.map((w) => w.kernel.name).filter((k) => k.startsWith('matmul')).map((k) => k.split('+')[0]));
    if (matrices) expect([...shapes].sort()).toEqual([0, 1, 2]);
    else expect([...products].sort()).toEqual(['matmulKernel', 'matmulSmallKernel']);
    expect(used.filter((w) => !ahead.has(key(w))).map((w) => `${w.kernel.name} ${JSON.stringify(w.values)}`)).toEqual([]);
  });
});
