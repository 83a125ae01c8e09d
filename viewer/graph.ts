// The compiled graph of the viewer's model as SVG, fused or not, drawn once each (graphviz, in Node).
import path from 'node:path';
import { compile } from '../compiler/passes.js';
import { toDot, toSvg } from '../compiler/svg.js';
import { llama } from '../models/llama.js';
import { OPSET } from '../ops/index.js';
import { target } from '../compiler/target.js';
import type { Model } from '../runtime/model.js';

export function graphPictures(model: Model, file: string): (fused: boolean) => Promise<string> {
  const svgs = new Map<boolean, Promise<string>>();
  return (fused) => {
    if (!svgs.has(fused)) {
      // planned for WebGPU's default binding limit, as `tapir compile` plans it
      const c = compile(llama(model.config, (n) => model.weightDtype(n) ?? 'f32'), OPSET, target({ maxBindingBytes: 128 << 20 }), { fuse: fused });
      const title = `${path.basename(file)}${fused ? '' : ' before fusion'}: ${c.plan!.dispatchesAt(0).length} dispatches per token`;
      svgs.set(fused, toSvg(toDot(c.graph, c.plan, title)));
    }
    return svgs.get(fused)!;
  };
}
