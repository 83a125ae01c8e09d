// The package's entry point for pages (`import { loadModel } from 'tapir/browser'`): no Node modules;
// the GPU is the browser's navigator.gpu. Models are GGUF files, fetched or given as bytes.
import { UsageError } from '../compiler/errors.js';
import { Model, type ModelOptions } from '../runtime/model.js';
import { ggufModelSource } from '../runtime/formats/open.js';
import { memorySource } from '../runtime/formats/source.js';

export * from './common.js';

/** A GGUF model from a URL (fetched), a Blob (a file the user picked) or its bytes, loaded onto the
 *  page's GPU. */
export async function loadModel(from: string | URL | Blob | ArrayBuffer | Uint8Array, options: ModelOptions & { name?: string } = {}): Promise<Model> {
  const { name, ...modelOptions } = options;
  let bytes: Uint8Array, file: string;
  if (typeof from === 'string' || from instanceof URL) {
    const res = await fetch(from);
    if (!res.ok) throw new UsageError(`${String(from)}: ${res.status} ${res.statusText}`);
    bytes = new Uint8Array(await res.arrayBuffer());
    file = String(from).split('/').pop() || String(from);
  } else if (from instanceof Uint8Array) [bytes, file] = [from, 'model.gguf'];
  else if (from instanceof ArrayBuffer) [bytes, file] = [new Uint8Array(from), 'model.gguf'];
  else [bytes, file] = [new Uint8Array(await from.arrayBuffer()), (from as { name?: string }).name ?? 'model.gguf'];
  return Model.create(ggufModelSource(memorySource(bytes), name ?? file), modelOptions);
}
