// The plans the snapshot tests compile: every kind of plan the runtime builds (decode, prefill blocks,
// batches, resumed tails, the lens head; fused and not; every hook tapped; every editable hook
// intervened) over every weight dtype and model family, with weights split to fit small bindings, so
// that every kernel the runtime can create (each base kernel and each composition of epilogues)
// appears in at least one of them.
import { llama, type LlamaConfig } from '../../models/llama.js';
import { type FamilyName } from '../../models/families.js';
import { synthModel } from '../../runtime/synth/synth.js';
import { loadModelSource } from '../../runtime/node/load.js';
import { GGUF } from './models.js';
import type { DType } from '../../compiler/ir/dtype.js';

export interface PlanCase {
  /** a name for messages */
  name: string;
  config: LlamaConfig;
  dtypeOf: (name: string) => DType;
  graph: { startLayer?: number; positions?: number; batch?: number };
  fuse: boolean;
  taps: 'none' | 'all';
  interventions: boolean;
  maxBindingBytes: number;
}

/** a synthetic model's config and weight dtypes, without making its weights */
export function synthShape(preset: string, dtype: DType, family: FamilyName = 'llama', contextLength?: number) {
  const m = synthModel(preset, dtype, 0, family);
  const dtypes = new Map(m.tensors.map((t) => [t.name, t.dtype]));
  // Phi-3's fused tensors are split at load: the parts keep the fused tensor's dtype
  const dtypeOf = (name: string): DType => dtypes.get(name) ?? (/attn_[qkv]\.weight|ffn_(gate|up)\.weight/.test(name) ? dtype : 'f32');
  return { config: { ...m.config, contextLength: contextLength ?? Math.min(m.config.contextLength, 4096) }, dtypeOf };
}

export function planCases(): PlanCase[] {
  const cases: PlanCase[] = [];
  const src = loadModelSource(GGUF);
  const stories = { config: { ...src.config, contextLength: 256 }, dtypeOf: (): DType => 'f32' };
  const shapes: { name: string; config: LlamaConfig; dtypeOf: (n: string) => DType; small?: number }[] = [
    { name: 'stories260K', ...stories },
    ...(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const).map((dt) => ({ name: `tiny-${dt}`, ...synthShape('tiny', dt, 'llama', 2048) })),
    // a short context, so the caches fit a 32 KiB binding and the weights are split by rows
    ...(['f32', 'f16', 'q8_0', 'q4_0'] as const).map((dt) => ({ name: `tiny-${dt}-ctx64`, ...synthShape('tiny', dt, 'llama', 64), small: 1 << 15 })),
    ...(['mistral', 'qwen2', 'qwen3', 'phi3', 'granite'] as const).flatMap((f) => (['f32', 'f16', 'q8_0'] as const).map((dt) => ({ name: `tiny-${f}-${dt}`, ...synthShape('tiny', dt, f, 512) }))),
  ];
  const graphs: PlanCase['graph'][] = [{}, { positions: 5 }, { positions: 3, batch: 2 }, { startLayer: 1, positions: 4 }];
  for (const s of shapes) {
    for (const graph of graphs) {
      for (const [fuse, taps, interventions] of [[true, 'none', false], [false, 'none', false], [true, 'all', false], [true, 'none', true], [false, 'all', true]] as const)
        cases.push({ name: `${s.name} ${JSON.stringify(graph)} fuse=${fuse} taps=${taps} iv=${interventions}`, config: s.config, dtypeOf: s.dtypeOf, graph, fuse, taps, interventions, maxBindingBytes: 1 << 27 });
      // weights split by rows to fit a small binding
      if (s.small) cases.push({ name: `${s.name} ${JSON.stringify(graph)} split`, config: s.config, dtypeOf: s.dtypeOf, graph, fuse: true, taps: 'none', interventions: false, maxBindingBytes: s.small });
    }
  }
  return cases;
}

/** the graph a case compiles */
export const caseGraph = (c: PlanCase) => llama(c.config, c.dtypeOf, c.graph);
