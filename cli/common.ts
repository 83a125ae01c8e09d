// What several commands share: writing output, opening the model the common options name, and
// reading token ids and vocabulary pieces the user wrote.
import { UsageError } from '../compiler/errors.js';
import { Model } from '../runtime/model.js';
import { defaultModel, loadModelSource } from '../runtime/node/load.js';
import { pieceId } from '../runtime/tokenizers/common.js';

export const out = (s: string): void => { process.stdout.write(s); };

/** The model file the options name (or the default), loaded onto the GPU. */
export async function openModel(o: { model?: string; tokenizer?: string; context?: number }) {
  const t0 = performance.now();
  const src = loadModelSource(o.model ?? defaultModel(), { tokenizer: o.tokenizer });
  const model = await Model.create(src, { contextLength: o.context });
  return { model, loadMs: performance.now() - t0 };
}

/** Comma-separated ids (token ids, latent indices) as numbers. */
export function idList(s: string, flag: string, what = 'token ids'): number[] {
  const parts = s.split(',').map((x) => x.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UsageError(`${flag} must be comma-separated ${what}, got '${s}'`);
  return parts.map(Number);
}

/** A token given as a PIECE (exactly as in the vocabulary) by `--NAME`, or by id with `--NAME-id`. */
export function tokenOption(model: Model, flag: string, piece: string | undefined, id: number | undefined): number | undefined {
  if (piece !== undefined && id !== undefined) throw new UsageError(`give --${flag} or --${flag}-id, not both`);
  if (id !== undefined) return id;
  return piece === undefined ? undefined : pieceId(model.tokenizer, piece, 'the piece');
}
