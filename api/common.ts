/// <reference types="@webgpu/types" preserve="true" />
// What the package offers in Node and in a browser alike: the model and its runs, the interpretability
// functions and SAEs applied to a model. api/index.ts (Node) and api/browser.ts add how a model is loaded.
export { Model, type ModelSource, type ModelOptions } from '../runtime/model.js';
export { getGpu, releaseGpu, type GpuContext } from '../runtime/gpu.js';
export { generate, type GenerateOptions, type GenerateResult } from '../runtime/generate.js';
export { ggufModelSource } from '../runtime/formats/open.js';
export { memorySource, type ByteSource } from '../runtime/formats/source.js';
export { runWithHooks, runBatchWithHooks, type HookedRunOptions } from '../runtime/interp/run.js';
export type { Intervention, CacheEntry } from '../runtime/interp/cache.js';
export { ActivationCache, type ResidStack, type Attributions, type StackOptions } from '../runtime/interp/activation_cache.js';
export { logitLens, type LensCell, type LensResult, type LensOptions } from '../runtime/interp/lens.js';
export { activationPatching, activationPatchingNaive, SITES, type PatchSite, type PatchOptions } from '../runtime/interp/patching.js';
export { attributionPatching, correlation, type AttributionReport } from '../runtime/interp/attribution.js';
export { patchingReport, METHODS, type PatchMethod } from '../runtime/interp/patch_report.js';
export { gradientGraph, gradientPositions, type Metric, type GradientOptions, type GradientResult } from '../runtime/interp/gradients.js';
export { directLogitAttribution, type Attribution } from '../runtime/interp/dla.js';
export { attentionPatterns, patternsSvg, type LayerPatterns } from '../runtime/interp/patterns.js';
export { explain, type Explanation, type ExplainOptions } from '../runtime/interp/explain.js';
export { explanationHtml } from '../runtime/interp/explain_html.js';
export { heatmapSvg } from '../runtime/interp/heatmap.js';
export { tlWeightNames, type TlWeight } from '../runtime/tl_weights.js';
export { applySae } from '../runtime/sae/apply.js';
export type { SaeModel } from '../runtime/sae/sae.js';
export type { SaeSplice } from '../runtime/sae/splice.js';
export { selectHooks, hookName, type HookName, type HookSelection } from '../compiler/hooks.js';
export { TapirError, UsageError, FormatError, ShapeError, GpuUnavailableError, CancelledError } from '../compiler/errors.js';
// your own graphs: build with the DSL, compile (fusion included), draw, run on the GPU, check in float64
export { GraphBuilder, type Graph } from '../compiler/ir/graph.js';
export { compile } from '../compiler/passes.js';
export { toDot, toSvg } from '../compiler/svg.js';
export { OPSET, ops } from '../ops/index.js';
export { Executor } from '../runtime/executor.js';
export { targetOf } from '../runtime/gpu.js';
export { ReferenceRunner } from '../runtime/reference.js';
export { weightOf, type WeightMap } from '../runtime/weights.js';
