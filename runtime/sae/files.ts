// SAE files in SAELens's layout: a folder with cfg.json and sae_weights.safetensors holding W_enc
// [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] (and threshold [d_sae] for JumpReLU).
// cfg.json follows SAELens 6.x (SAEConfig.to_dict: architecture, d_in, d_sae, dtype, device,
// apply_b_dec_to_input, normalize_activations, reshape_activations, k for TopK, and the metadata block
// with model_name, hook_name, hook_layer, prepend_bos, context_size); 5.x's top-level hook_name is read too.
// Writes are atomic (temp + rename), the weights before the config.
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, UsageError } from '../../compiler/errors.js';
import { parseSafetensors, tensorValues, writeSafetensors } from '../formats/safetensors.js';
import { writeAtomically } from '../node/write_file.js';
import { PARAMS, type SaeTensors } from './gpu_sae.js';
import type { SaeModel } from './sae.js';

export const SAE_CFG = 'cfg.json';
export const SAE_WEIGHTS = 'sae_weights.safetensors';

/** The model as SAELens would save it: the input scale folded into the weights (W_enc·s, W_dec/s, b_dec/s). */
export function saveSaeLens(dir: string, sae: SaeModel) {
  const s = sae.inputScale;
  const p = sae.params;
  const folded: SaeTensors = { W_enc: p.W_enc.map((v) => v * s), b_enc: p.b_enc, W_dec: p.W_dec.map((v) => v / s), b_dec: p.b_dec.map((v) => v / s) };
  const { dIn, dSae, arch, k } = sae.dims;
  const shapes: Record<string, number[]> = { W_enc: [dIn, dSae], b_enc: [dSae], W_dec: [dSae, dIn], b_dec: [dIn] };
  fs.mkdirSync(dir, { recursive: true });
  const bytes = writeSafetensors(PARAMS.map((name) => ({ name, dtype: 'f32' as const, shape: shapes[name]!, bytes: new Uint8Array(folded[name].buffer.slice(0)) })));
  writeAtomically(path.join(dir, SAE_WEIGHTS), (fd) => { fs.writeSync(fd, bytes); });
  const layer = /^blocks\.(\d+)\./.exec(sae.hook ?? '')?.[1];
  const cfg = {
    architecture: arch === 'topk' ? 'topk' : 'standard', d_in: dIn, d_sae: dSae, dtype: 'float32', device: 'cpu',
    apply_b_dec_to_input: true, normalize_activations: 'none', reshape_activations: 'none', ...(arch === 'topk' ? { k } : {}),
    metadata: { model_name: sae.model ?? null, hook_name: sae.hook ?? null, hook_layer: layer === undefined ? null : Number(layer), hook_head_index: null, prepend_bos: true },
  };
  writeAtomically(path.join(dir, SAE_CFG), (fd) => { fs.writeSync(fd, JSON.stringify(cfg, null, 2)); });
}

/** Load a SAELens-layout SAE folder, checking every shape; JumpReLU and gated SAEs are refused by name. */
export function loadSaeLens(dir: string): SaeModel {
  const cfgFile = path.join(dir, SAE_CFG), wFile = path.join(dir, SAE_WEIGHTS);
  if (!fs.existsSync(cfgFile) || !fs.existsSync(wFile)) throw new UsageError(`${dir} is not an SAE folder (it needs ${SAE_CFG} and ${SAE_WEIGHTS})`);
  let cfg: Record<string, unknown>;
  try { cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>; } catch (e) { throw new FormatError(cfgFile, `not JSON (${(e as Error).message})`); }
  const dIn = cfg.d_in, dSae = cfg.d_sae;
  if (!Number.isInteger(dIn) || !Number.isInteger(dSae) || (dIn as number) < 1 || (dSae as number) < 1) throw new FormatError(cfgFile, 'd_in and d_sae must be positive integers');
  const archName = String(cfg.architecture ?? 'standard');
  if (!['standard', 'topk'].includes(archName)) throw new FormatError(cfgFile, `architecture '${archName}' is not supported (standard, topk)`);
  const k = archName === 'topk' ? Number(cfg.k ?? (cfg.activation_fn_kwargs as { k?: number } | undefined)?.k) : 0;
  if (archName === 'topk' && !(Number.isInteger(k) && k >= 1 && k <= (dSae as number))) throw new FormatError(cfgFile, `TopK needs an integer k in 1..d_sae, got ${String(cfg.k)}`);
  if (cfg.apply_b_dec_to_input === false) throw new FormatError(cfgFile, 'apply_b_dec_to_input = false is not supported');
  if (cfg.normalize_activations !== undefined && cfg.normalize_activations !== 'none') throw new FormatError(cfgFile, `normalize_activations '${String(cfg.normalize_activations)}' is not supported (fold it first)`);
  const meta = (cfg.metadata ?? cfg.meta ?? cfg) as Record<string, unknown>;
  const bytes = fs.readFileSync(wFile);
  const st = parseSafetensors(bytes, wFile, bytes.byteLength);
  const shapes: Record<string, number[]> = { W_enc: [dIn as number, dSae as number], b_enc: [dSae as number], W_dec: [dSae as number, dIn as number], b_dec: [dIn as number] };
  const params = {} as SaeTensors;
  for (const name of PARAMS) {
    const t = st.tensors.get(name);
    if (!t) throw new FormatError(wFile, `no tensor '${name}'`);
    if (t.shape.join(',') !== shapes[name]!.join(',')) throw new FormatError(wFile, `'${name}' has shape [${t.shape}], the config implies [${shapes[name]}]`);
    params[name] = tensorValues(bytes, t); // (F32, F16 or BF16: parseSafetensors takes no other)
  }
  return {
    dims: { dIn: dIn as number, dSae: dSae as number, arch: archName === 'topk' ? 'topk' : 'relu', k },
    params, inputScale: 1,
    ...(typeof meta.hook_name === 'string' ? { hook: meta.hook_name } : {}),
    ...(typeof meta.model_name === 'string' ? { model: meta.model_name } : {}),
  };
}
