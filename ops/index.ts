// The op set, and builders that apply ops to nodes of one graph so model code reads like math.
import { GraphBuilder, type Node } from '../compiler/ir/graph.js';
import { input } from './input.js';
import { weight } from './weight.js';
import { state } from './state.js';
import { ropeTable } from './rope_table.js';
import { embedding } from './embedding.js';
import { rmsnorm } from './rmsnorm.js';
import { matvec } from './matvec.js';
import { rope } from './rope.js';
import { kvWrite } from './kv_write.js';
import { attention, attentionGrad, attentionStats, type AttentionAttr } from './attention.js';
import { add } from './add.js';
import { bias } from './bias.js';
import { siluMul } from './silu_mul.js';
import { scale } from './scale.js';
import { slice } from './slice.js';
import { qkvMatvec } from './qkv_matvec.js';
import { ropeKv } from './rope_kv.js';
import { qkvRopeKv } from './qkv_rope_kv.js';
import { ffnGateUp } from './ffn_gate_up.js';
import { argmax } from './argmax.js';
import { intervene } from './intervene.js';
import { attentionScores, attentionScoresGrad, type ScoresAttr } from './attention_scores.js';
import { patternSoftmax, patternSoftmaxGrad } from './pattern_softmax.js';
import { patternApply, patternApplyGrad, type PatternApplyAttr } from './pattern_apply.js';
import { rmsParts } from './rms_parts.js';
import { stored } from './stored.js';
import { headResult, type HeadResultAttr } from './head_result.js';
import { saeEncode } from './sae_encode.js';
import { saeDecode } from './sae_decode.js';
import { lastRow } from './last_row.js';
import { pick } from './pick.js';
import { lensStats, type LensStatsAttr } from './lens_stats.js';
import { fill } from './fill.js';
import { matvecT } from './matvec_t.js';
import { rmsnormGrad } from './rmsnorm_grad.js';
import { siluMulGrad } from './silu_mul_grad.js';
import { lastRowGrad } from './last_row_grad.js';
import { kvRows } from './kv_rows.js';
import { logitDiff, logitDiffGrad } from './logit_diff.js';
import { logitDiffUnembed, logitDiffUnembedGrad } from './logit_diff_unembed.js';
import { logProb, logProbGrad } from './log_prob.js';
import { whereNonzero } from './where_nonzero.js';
import type { GradOps } from '../compiler/grad.js';
import type { Op } from './op.js';
import { RULES } from './rules.js';
import { fragments, kernels } from './kernels.gen.js';
import { opSet } from '../compiler/ir/opset.js';
import type { DType } from '../compiler/ir/dtype.js';

export const OPS: readonly Op[] = [input, weight, state, ropeTable, embedding, rmsnorm, matvec, rope, kvWrite, attention, add, bias, siluMul,
  scale, slice, qkvMatvec, ropeKv, qkvRopeKv, ffnGateUp, argmax, intervene, attentionScores, rmsParts, stored, headResult, saeEncode, saeDecode, lastRow, pick, lensStats,
  fill, matvecT, rmsnormGrad, siluMulGrad, lastRowGrad, kvRows, attentionStats, attentionGrad, logitDiff, logitDiffGrad, logitDiffUnembed, logitDiffUnembedGrad, logProb, logProbGrad, whereNonzero,
  attentionScoresGrad, patternSoftmax, patternSoftmaxGrad, patternApply, patternApplyGrad] as Op[];
/** what compiler/grad.ts builds with: the seed constant and the sum of a node's gradients */
export const GRAD_OPS: GradOps = { fill, add };
/** tapir's op set: what compile() and parseGraph() are given */
export const OPSET = opSet(OPS, RULES, kernels, fragments);

/** The graph-building helpers of one builder (what a caller-built metric is made with). */
export type Ops = ReturnType<typeof ops>;
export function ops(g: GraphBuilder) {
  return {
    input: (name: string, shape: number[], dtype: 'i32' | 'f32' = 'i32') => g.apply(input, [], { name, shape, dtype }),
    weight: (name: string, shape: number[], dtype: DType = 'f32') => g.apply(weight, [], { name, shape, dtype }),
    state: (name: string, shape: number[]) => g.apply(state, [], { name, shape }),
    ropeTable: (context: number, rotDim: number, theta: number, factors?: readonly number[]) =>
      g.apply(ropeTable, [], factors ? { context, rotDim, theta, factors } : { context, rotDim, theta }),
    embedding: (table: Node, token: Node) => g.apply(embedding, [table, token], {}),
    rmsnorm: (x: Node, w: Node, eps: number) => g.apply(rmsnorm, [x, w], { eps }),
    matvec: (w: Node, x: Node) => g.apply(matvec, [w, x], {}),
    rope: (x: Node, pos: Node, table: Node, headSize: number) => g.apply(rope, [x, pos, table], { headSize }),
    kvWrite: (cache: Node, x: Node, pos: Node) => g.apply(kvWrite, [cache, x, pos], {}),
    attention: (q: Node, k: Node, v: Node, pos: Node, a: AttentionAttr) => g.apply(attention, [q, k, v, pos], a),
    add: (a: Node, b: Node) => g.apply(add, [a, b], {}),
    bias: (x: Node, b: Node, offset: number) => g.apply(bias, [x, b], { offset }),
    siluMul: (gate: Node, up: Node) => g.apply(siluMul, [gate, up], {}),
    scale: (x: Node, factor: number) => g.apply(scale, [x], { factor }),
    argmax: (x: Node) => g.apply(argmax, [x], {}),
    attentionScores: (q: Node, k: Node, pos: Node, a: ScoresAttr) => g.apply(attentionScores, [q, k, pos], a),
    patternSoftmax: (scores: Node, pos: Node, nHeads: number) => g.apply(patternSoftmax, [scores, pos], { nHeads }),
    patternApply: (pattern: Node, v: Node, pos: Node, a: PatternApplyAttr) => g.apply(patternApply, [pattern, v, pos], a),
    rmsParts: (x: Node, eps: number, part: 'scale' | 'normalized') => g.apply(rmsParts, [x], { eps, part }),
    headResult: (z: Node, wo: Node, a: HeadResultAttr) => g.apply(headResult, [z, wo], a),
    lastRow: (x: Node, row?: number) => g.apply(lastRow, [x], row === undefined ? {} : { row }),
    pick: (x: Node, ids: Node) => g.apply(pick, [x, ids], {}),
    lensStats: (logits: Node, target: Node, a: LensStatsAttr) => g.apply(lensStats, [logits, target], a),
    logitDiff: (logits: Node, ids: Node, row?: number) => g.apply(logitDiff, [logits, ids], row === undefined ? {} : { row }),
    logitDiffUnembed: (w: Node, x: Node, ids: Node) => g.apply(logitDiffUnembed, [w, x, ids], {}),
    logProb: (logits: Node, ids: Node, row?: number) => g.apply(logProb, [logits, ids], row === undefined ? {} : { row }),
  };
}
