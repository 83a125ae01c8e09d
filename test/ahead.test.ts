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
});
