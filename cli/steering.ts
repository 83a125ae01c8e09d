// `--steer` specs: HOOK:add=FILE.safetensors[#TENSOR][*SCALE], HOOK:mean=FILE..., HOOK:scale=X or
// HOOK:zero, as the interventions generation applies at every position (runtime/steer.ts). A vector
// file holds one tensor (or names it after '#'): a saved steering vector, or a `tapir cache` entry.
import fs from 'node:fs';
import { UsageError } from '../compiler/errors.js';
import { parseSafetensors, tensorValues } from '../runtime/formats/safetensors.js';
import type { Intervention } from '../runtime/interp/cache.js';

const SPEC = /^(?<hook>[^:]+):(?:(?<kind>add|mean)=(?<file>[^#*]+)(?:#(?<tensor>[^*]+))?(?:\*(?<scale>[-+0-9.eE]+))?|scale=(?<by>[-+0-9.eE]+)|(?<zero>zero))$/;

function vectorFrom(file: string, tensor: string | undefined, spec: string): Float32Array {
  if (!fs.existsSync(file)) throw new UsageError(`--steer ${spec}: the file '${file}' does not exist`);
  const bytes = fs.readFileSync(file);
  const st = parseSafetensors(bytes, file, bytes.byteLength);
  const names = [...st.tensors.keys()];
  const name = tensor ?? (names.length === 1 ? names[0]! : undefined);
  if (name === undefined) throw new UsageError(`--steer ${spec}: ${file} holds ${names.length} tensors (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}): name one after '#'`);
  const t = st.tensors.get(name);
  if (!t) throw new UsageError(`--steer ${spec}: ${file} has no tensor '${name}' (it has ${names.slice(0, 5).join(', ')})`);
  return tensorValues(bytes, t);
}

/** The interventions `--steer` specs ask for. */
export function steeringOf(specs: readonly string[]): Intervention[] {
  return specs.map((spec): Intervention => {
    const m = SPEC.exec(spec)?.groups;
    if (!m) throw new UsageError(`--steer '${spec}': write HOOK:add=FILE.safetensors[*SCALE], HOOK:mean=FILE, HOOK:scale=X or HOOK:zero`);
    const number = (s: string) => { const x = Number(s); if (!Number.isFinite(x)) throw new UsageError(`--steer '${spec}': '${s}' is not a number`); return x; };
    if (m.zero) return { hook: m.hook!, zero: true };
    if (m.by !== undefined) return { hook: m.hook!, scale: number(m.by) };
    const v = vectorFrom(m.file!, m.tensor, spec);
    if (m.scale !== undefined) { const k = number(m.scale); for (let i = 0; i < v.length; i++) v[i]! *= k; }
    return m.kind === 'add' ? { hook: m.hook!, add: v } : { hook: m.hook!, mean: v };
  });
}
