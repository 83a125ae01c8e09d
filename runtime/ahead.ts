// The pipelines prefill-shaped work needs, known before any of it runs. A plan variant (a prompt's
// block, hooks tapped, a patching pass, the lens head) is compiled when a workload first asks for it,
// and its kernels' pipelines are the expensive part of that first call (the NVIDIA driver compiles each
// in 10-50 ms). A kernel's WGSL depends on which op and which fused epilogues it is, never on the model's
// depth or on how many positions a pass takes (those are uniforms), so the variants of a two-layer copy
// of the model name every pipeline the full model's variants will: Model.create compiles them and
// creates their pipelines side by side while the weights upload (issue 16, "first runs").
import { compile, type CompileOptions } from '../compiler/passes.js';
import type { Target } from '../compiler/target.js';
import { lensHead, llama, type LlamaConfig } from '../models/llama.js';
import type { DType } from '../compiler/ir/dtype.js';
import { OPSET } from '../ops/index.js';
import { planPipelines } from './pipelines.js';

/** Positions of prefill blocks, one for each kernel the matrix products choose by the block's rows
 *  (ops/matvec.ts's matmulFor): the f32 kernels' at most 32 and more; the tensor cores' at most 16, up
 *  to 64, and more (its 128 × 128 tiles, for matrices of TENSOR_WIDE_ROWS rows or more). */
const BLOCKS = [2, 64, 128] as const;

/** The top-k the lens reports unless asked otherwise (cli/commands/lens.ts) */
const LENS_TOP = 5;

/** Every kernel (with its specialization constants) that the workloads researchers run by default
 *  dispatch: prefill blocks with the head on the last or every position, every layer's resid_post
 *  tapped (run-with-cache, the lens), batched resid_pre patching passes and the lens head, each at
 *  sizes this device's bindings hold (`blockSize`: the positions a prefill pass may take). */
export function aheadPipelines(config: LlamaConfig, dtypeOf: (name: string) => DType, target: Target, o: CompileOptions, blockSize: number) {
  if (config.nLayers < 2) return [];
  const c = { ...config, nLayers: 2 };
  const resid = ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post'];
  const plans = [];
  for (const positions of new Set(BLOCKS.map((p) => Math.min(p, blockSize - (blockSize % 2))))) {
    if (positions < 2) continue;
    for (const head of ['last', 'all'] as const) {
      plans.push(compile(llama(c, dtypeOf, { positions, head }), OPSET, target, o).plan!);
      plans.push(compile(llama(c, dtypeOf, { positions, head }), OPSET, target, { ...o, taps: resid }).plan!);
    }
    // (resid_pre patching: one plan for every layer, its resid_pre hooks tapped; runtime/interp/patch_run.ts)
    const patch = llama(c, dtypeOf, { positions: positions / 2, batch: 2, head: 'last', pick: 2 });
    plans.push(compile(patch, OPSET, target, { ...o, taps: ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre'] }).plan!);
  }
  // the lens head's rows (2 layers × positions) of logits must fit a binding
  const lensRows = Math.floor(target.maxBindingBytes / (4 * c.vocabSize));
  for (const positions of new Set([1, Math.min(32, Math.floor(lensRows / 2)), Math.min(64, Math.floor(lensRows / 2))])) {
    if (2 * positions <= lensRows) plans.push(compile(lensHead(c, dtypeOf, { layers: 2, positions, top: LENS_TOP }), OPSET, target, o).plan!);
  }
  return plans.flatMap(planPipelines);
}
