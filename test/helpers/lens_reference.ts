// The logit lens as tapir computed it before the lens became one GPU job: every (layer, position)'s
// logits read back, a float64 softmax of each, all tokens sorted in JavaScript. Kept as the reference
// the GPU reductions are checked against.
import { softmax } from '../../runtime/sampler.js';

export interface ReferenceCell { top: { id: number; prob: number }[]; target?: { rank: number; prob: number }; kl: number }

export function lensCellsReference(logits: readonly (readonly Float32Array[])[], target: number | undefined, top: number): ReferenceCell[][] {
  const final = logits[logits.length - 1]!.map((r) => softmax(r));
  return logits.map((layer) => layer.map((row, p) => {
    const probs = softmax(row);
    const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
    let kl = 0;
    const f = final[p]!;
    for (let i = 0; i < f.length; i++) if (f[i]! > 0) kl += f[i]! * (Math.log(f[i]!) - Math.log(Math.max(probs[i]!, 1e-300)));
    const cell: ReferenceCell = { top: order.slice(0, top).map((id) => ({ id, prob: probs[id]! })), kl: Math.max(0, kl) };
    if (target !== undefined) cell.target = { rank: order.indexOf(target), prob: probs[target]! };
    return cell;
  }));
}
