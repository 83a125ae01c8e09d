// Getting a WebGPU device, from the browser's navigator.gpu or (in Node) the `webgpu` package.
// One device per process is shared (tests and tools reuse it, with its pipeline cache).
import { GpuUnavailableError } from '../compiler/errors.js';
import type { Target } from '../compiler/target.js';

export interface GpuContext {
  device: GPUDevice;
  limits: { maxStorageBufferBindingSize: number; maxStorageBuffersPerShaderStage: number; maxBufferSize: number };
  /** optional WebGPU features the device was given (timestamp-query, shader-f16, subgroups where offered) */
  features: string[];
  /** the adapter's description (vendor, architecture, device, driver) */
  adapterInfo: string;
  /** f16 16 × 16 × 16 subgroup matrices with f32 results, for subgroups of 32 (Target.matrices), or why not */
  matrices: { readonly ok: true } | { readonly ok: false; readonly why: string };
  /** compiled pipelines by WGSL text and constants: lavapipe compiles each through LLVM, so never twice */
  pipelines: Map<string, GPUComputePipeline>;
  shaderModules: Map<string, GPUShaderModule>;
  /** every WGSL module this context has created (tests check where they came from) */
  modules: string[];
  /** held so they are not garbage-collected while the device lives: dawn.node frees the native
   *  instance with its JS object, and a device outliving it crashes the process */
  readonly keepAlive: readonly unknown[];
  destroy(): void;
}

/** The compile target this device is: its limits and features (`maxBindingBytes` may be lowered, as
 *  tests do to force weight splitting). */
export function targetOf(gpu: GpuContext, maxBindingBytes = gpu.limits.maxStorageBufferBindingSize): Target {
  const subgroups = gpu.features.includes('subgroups');
  // (a context stripped of subgroups, as tests make, has no subgroup matrices either)
  return { maxBindingBytes, maxStorageBuffers: gpu.limits.maxStorageBuffersPerShaderStage, subgroups, matrices: gpu.matrices.ok && subgroups };
}

const HOW_TO_FIX =
  'tapir needs WebGPU. On a machine without a GPU it runs on the CPU through Mesa\'s lavapipe Vulkan driver (Mesa >= 25; ' +
  'Debian 12 has it in bookworm-backports): run `bash scripts/setup.sh`, which installs it. Also make sure XDG_RUNTIME_DIR is set.';

async function nodeGpu(): Promise<GPU> {
  let mod: { create: (opts: string[]) => GPU; globals: Record<string, unknown> };
  try {
    // (a name in a variable: a page's bundler leaves Node's WebGPU out of the bundle)
    const name = 'webgpu';
    mod = (await import(/* @vite-ignore */ name)) as unknown as typeof mod;
  } catch (e) {
    throw new GpuUnavailableError(`the 'webgpu' package could not be loaded (${(e as Error).message}). Run npm install. ${HOW_TO_FIX}`);
  }
  Object.assign(globalThis, mod.globals); // GPUBufferUsage, GPUMapMode, ...
  // Dawn options, `;`-separated (e.g. "adapter=NAME"). Dawn offers subgroup matrices (the tensor cores)
  // only with allow_unsafe_apis, and f16 on NVIDIA's Vulkan driver only with vulkan_enable_f16_on_nvidia:
  // both are asked for, with any features the options name. Dawn's robustness transform is off: tapir's
  // printer guards every array access itself (compiler/kernel/bounds.ts: storage indices clamped as the
  // transform would, workgroup ones shown in bounds or clamped), and the transform's clamps on indices
  // already in bounds cost the tensor-core kernels 30-40 % (issue 18's runs).
  const options = (process.env.TAPIR_DAWN_OPTIONS ?? '').split(/\s*;\s*/).filter(Boolean);
  // Timestamps are not quantized (Dawn's default rounds them to 2^16 ns for pages, against timing
  // attacks): tapir's per-dispatch profiles (`tapir bench`, the benchmarks) read kernels of a few µs.
  const add = (flag: string, names: string) => {
    const i = options.findIndex((o) => o.startsWith(`${flag}=`));
    if (i >= 0) options[i] += `,${names}`; else options.push(`${flag}=${names}`);
  };
  add('enable-dawn-features', 'allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness');
  add('disable-dawn-features', 'timestamp_quantization');
  return mod.create(options);
}

let shared: Promise<GpuContext> | undefined;

/** The process-wide GPU context, created on first use. */
export function getGpu(): Promise<GpuContext> {
  shared ??= openGpu().catch((e) => { shared = undefined; throw e; });
  return shared;
}

async function openGpu(): Promise<GpuContext> {
  if (typeof process !== 'undefined' && !process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  const gpu: GPU = typeof navigator !== 'undefined' && (navigator as { gpu?: GPU }).gpu ? (navigator as { gpu: GPU }).gpu : await nodeGpu();
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    throw new GpuUnavailableError(`WebGPU could not start (${(e as Error).message.split('\n')[0]}). ${HOW_TO_FIX}`);
  }
  if (!adapter) throw new GpuUnavailableError(`WebGPU found no adapter. ${HOW_TO_FIX}`);
  const l = adapter.limits;
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const matrices = matricesOf(adapter, info);
  const features = (['timestamp-query', 'shader-f16', 'subgroups', ...(matrices.ok ? [MATRIX_FEATURE] : [])] as const).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({
    requiredFeatures: features as GPUFeatureName[],
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxBufferSize: l.maxBufferSize,
      // matmulTensorKernel's tiles (TENSOR_WORKGROUP_BYTES) are past WebGPU's default 16 KiB
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    },
  });
  let lost = false;
  void device.lost.then((info) => { if (info.reason !== 'destroyed' && !lost) console.error(`tapir: GPU device lost: ${info.message}`); });
  const ctx: GpuContext = {
    device,
    limits: {
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
      maxBufferSize: device.limits.maxBufferSize,
    },
    features: [...features],
    adapterInfo: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / '),
    matrices,
    pipelines: new Map(),
    shaderModules: new Map(),
    modules: [],
    keepAlive: [gpu, adapter],
    destroy() {
      lost = true;
      device.destroy();
      if (shared) shared = undefined;
    },
  };
  return ctx;
}

const MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';
/** the workgroup memory matmulTensorKernel declares (ops/matmul_tensor.ts: two f16 tiles of 128 × 40,
 *  1024 + 128 f32; test/bounds.test.ts checks it against the kernel) */
export const TENSOR_WORKGROUP_BYTES = 2 * 5120 * 2 + (1024 + 128) * 4;
/** The subgroup-matrix configurations Dawn lists on the adapter (an experimental field). */
type MatrixConfig = { componentType: string; resultComponentType: string; M: number; N: number; K: number };

/** Whether matmulTensorKernel can run here: the feature, f16 and subgroups, an f16 × f16 -> f32
 *  16 × 16 × 16 configuration, and subgroups of exactly 32 (its workgroup of 128 is four subgroups). Chosen
 *  by what the adapter offers, never by its vendor's name. */
function matricesOf(adapter: GPUAdapter, info: GPUAdapterInfo): GpuContext['matrices'] {
  // on where offered (with Dawn's robustness transform off and the kernel's tiles shown in bounds:
  // 256-row passes' products about twice the f32 kernels' speed, benchmarks/RESULTS.md, issue 18);
  // TAPIR_TENSOR_CORES=off keeps every product on the exact f32 kernels
  if (typeof process !== 'undefined' && process.env.TAPIR_TENSOR_CORES === 'off') return { ok: false, why: 'TAPIR_TENSOR_CORES=off keeps the f32 kernels' };
  const has = (f: string) => adapter.features.has(f);
  if (!has(MATRIX_FEATURE)) return { ok: false, why: `the adapter does not offer ${MATRIX_FEATURE}` };
  if (!has('shader-f16') || !has('subgroups')) return { ok: false, why: 'the adapter offers subgroup matrices but not shader-f16 and subgroups' };
  const x = info as GPUAdapterInfo & { subgroupMatrixConfigs?: Iterable<MatrixConfig>; subgroupMinSize?: number; subgroupMaxSize?: number };
  const configs = [...(x.subgroupMatrixConfigs ?? [])];
  if (!configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16))
    return { ok: false, why: 'the adapter lists no f16 16x16x16 subgroup matrix with f32 results' };
  if (x.subgroupMinSize !== 32 || x.subgroupMaxSize !== 32) return { ok: false, why: `its subgroups are ${x.subgroupMinSize}..${x.subgroupMaxSize} wide, not 32` };
  if (adapter.limits.maxComputeWorkgroupStorageSize < TENSOR_WORKGROUP_BYTES) return { ok: false, why: `its workgroups have ${adapter.limits.maxComputeWorkgroupStorageSize} bytes of memory, the tiles need ${TENSOR_WORKGROUP_BYTES}` };
  return { ok: true };
}

/** Run `make` (which creates GPU objects) and fail if WebGPU reported a validation error meanwhile:
 *  a shader that does not compile must be an error, never a silent zero result. */
export async function checked<T>(gpu: GpuContext, make: () => T): Promise<T> {
  gpu.device.pushErrorScope('validation');
  let value: T;
  try {
    value = make();
  } finally {
    const err = await gpu.device.popErrorScope();
    if (err) throw new Error(`internal: WebGPU rejected what tapir built: ${err.message}`);
  }
  return value;
}

/** Destroy the shared device so the process can exit (a live device keeps Node running). */
export async function releaseGpu(): Promise<void> {
  if (!shared) return;
  const s = shared;
  shared = undefined;
  try { (await s).destroy(); } catch { /* it never opened */ }
}
