// The package's entry point in Node: `import { loadModel, logitLens, releaseGpu } from 'tapir'`.
// Everything api/common.ts offers, model files read from disk (GGUF, llama2.c, Hugging Face folders),
// SAELens folders and activation stores.
import { Model, type ModelOptions } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';

export * from './common.js';
export { loadModelSource, defaultModel } from '../runtime/node/load.js';
export { loadSaeLens, saveSaeLens } from '../runtime/sae/files.js';
export { evalSae, type SaeEval } from '../runtime/sae/eval.js';
export { featureCards, featuresHtml, type FeatureCard } from '../runtime/sae/features.js';
export { collect, readManifest, type CollectOptions, type StoreManifest } from '../runtime/sae/store.js';
export { trainSae, type TrainOptions } from '../runtime/sae/train.js';

export interface LoadOptions extends ModelOptions {
  /** a llama2.c checkpoint's tokenizer.bin, where it is not beside the checkpoint */
  tokenizer?: string;
}

/** A model file (GGUF, llama2.c `.bin`) or a Hugging Face folder, loaded onto the GPU and ready to run:
 *  TransformerLens's `from_pretrained`, for local files. Call `model.dispose()` and `releaseGpu()` when done. */
export async function loadModel(pathOrFolder: string, options: LoadOptions = {}): Promise<Model> {
  const { tokenizer, ...modelOptions } = options;
  return Model.create(loadModelSource(pathOrFolder, { tokenizer }), modelOptions);
}
