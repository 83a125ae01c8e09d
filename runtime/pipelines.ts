// Compute pipelines: one per kernel WGSL and specialization constants, cached on the GPU context and
// created side by side where a plan's set is known ahead; and what dispatching a kernel needs (its
// uniform data, a grid for a linear workgroup count).
import type { Plan } from '../compiler/plan.js';
import { type KernelIR, specParams, uniformParams } from '../compiler/kernel/ir.js';
import { toWGSL, uniformBytes } from '../compiler/kernel/wgsl.js';
import type { GpuContext } from './gpu.js';

const MAX_GROUPS_PER_DIM = 65535;

type PipelineKey = { code: string; constants: Record<string, number>; key: string };
/** keys made before, per kernel and (subgroups, constants): the same key string each time, so the
 *  pipeline and module caches hash it once (a fresh WGSL-long key string per dispatch, twice: making a
 *  196-dispatch executor took 23.5 ms on lavapipe, 14 with the keys kept) */
const keys = new WeakMap<KernelIR, Map<string, PipelineKey>>();

/** A kernel's WGSL on this device, its specialization constants, and the pipeline cache's key. */
export function pipelineKey(gpu: GpuContext, k: KernelIR, values: Readonly<Record<string, number>>): PipelineKey {
  const subgroups = gpu.features.includes('subgroups');
  const constants = Object.fromEntries(specParams(k).map((p) => [p.name, values[p.name]!]));
  const json = JSON.stringify(constants), at = `${subgroups}|${json}`;
  let byConstants = keys.get(k);
  if (!byConstants) keys.set(k, (byConstants = new Map()));
  let made = byConstants.get(at);
  if (!made) {
    const code = toWGSL(k, { subgroups });
    byConstants.set(at, (made = { code, constants, key: `${code}\n${json}` }));
  }
  return made;
}

function moduleFor(gpu: GpuContext, code: string): GPUShaderModule {
  let module = gpu.shaderModules.get(code);
  if (!module) {
    gpu.modules.push(code);
    module = gpu.device.createShaderModule({ code });
    gpu.shaderModules.set(code, module);
  }
  return module;
}

export function pipelineFor(gpu: GpuContext, k: KernelIR, values: Readonly<Record<string, number>> = {}): GPUComputePipeline {
  const { code, constants, key } = pipelineKey(gpu, k, values);
  let p = gpu.pipelines.get(key);
  if (!p) {
    p = gpu.device.createComputePipeline({ layout: 'auto', compute: { module: moduleFor(gpu, code), entryPoint: 'main', constants } });
    gpu.pipelines.set(key, p);
  }
  return p;
}

/** Create, all at once, the pipelines these kernels need that the context lacks: the driver compiles
 *  them side by side (createComputePipelineAsync) instead of one after another as a plan is built. */
export async function preparePipelines(gpu: GpuContext, wanted: Iterable<{ kernel: KernelIR; values: Readonly<Record<string, number>> }>): Promise<void> {
  const todo = new Map<string, Promise<void>>();
  for (const { kernel, values } of wanted) {
    const { code, constants, key } = pipelineKey(gpu, kernel, values);
    if (gpu.pipelines.has(key) || todo.has(key)) continue;
    const module = moduleFor(gpu, code);
    todo.set(key, gpu.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main', constants } }).then((p) => { gpu.pipelines.set(key, p); }));
  }
  await Promise.all(todo.values());
}

/** The pipelines a plan dispatches. */
export const planPipelines = (plan: Plan) => plan.dispatches.map((ds) => ({ kernel: plan.kernels.get(ds.kernel)!, values: ds.uniforms }));

/** Workgroup grid for a linear count: 2-D past 65535 (kernels linearise it back). */
export const grid = (n: number): [number, number] =>
  n <= MAX_GROUPS_PER_DIM ? [n, 1] : [MAX_GROUPS_PER_DIM, Math.ceil(n / MAX_GROUPS_PER_DIM)];

/** Build the uniform buffer contents for a kernel's scalar parameters. */
export function uniformData(k: KernelIR, values: Readonly<Record<string, number>>): ArrayBuffer {
  const buf = new ArrayBuffer(uniformBytes(k));
  const view = new DataView(buf);
  uniformParams(k).forEach((p, i) => {
    const v = values[p.name]!;
    if (p.ty === 'f32') view.setFloat32(i * 4, v, true);
    else if (p.ty === 'u32') view.setUint32(i * 4, v, true);
    else view.setInt32(i * 4, v, true);
  });
  return buf;
}
