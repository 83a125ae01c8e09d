// A command's options, declared once: each with its kind, meaning and default. The parser (Node's
// util.parseArgs), the checks of numbers and the --help text all come from that declaration, so help
// cannot drift from what a command accepts. Every usage error is a UsageError: one line, exit code 2.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../compiler/errors.js';

interface Base {
  /** what it means, as the help prints it; '\n' starts a continuation line */
  readonly help: string;
  readonly short?: string;
}
export type OptionSpec =
  | (Base & { readonly kind: 'flag' })
  | (Base & { readonly kind: 'string'; readonly arg: string; readonly default?: string; readonly multiple?: boolean })
  /** a file or folder the command writes: the folder it goes in must exist, checked before any work */
  | (Base & { readonly kind: 'output'; readonly arg: string })
  | (Base & { readonly kind: 'int'; readonly arg: string; readonly min: number; readonly max?: number; readonly default?: number })
  | (Base & { readonly kind: 'number'; readonly arg: string; readonly min: number; readonly max: number; readonly default?: number });
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** The value an option gives: a flag's boolean, a number for numbers, strings otherwise; undefined
 *  when it has no default and was not given. */
type ValueOf<S extends OptionSpec> =
  S extends { kind: 'flag' } ? boolean
    : S extends { kind: 'int' | 'number' } ? (S extends { default: number } ? number : number | undefined)
      : S extends { multiple: true } ? string[]
        : S extends { default: string } ? string : string | undefined;
export type Values<O extends OptionSpecs> = { -readonly [K in keyof O]: ValueOf<O[K]> };

/** The options every command that loads a model takes. */
export const MODEL_OPTIONS = {
  model: { kind: 'string', short: 'm', arg: 'PATH', help: 'GGUF (llama, qwen2, qwen3, phi3 or granite architecture), llama2.c .bin,\nor a Hugging Face folder (config.json, tokenizer.json, *.safetensors)\n(default: <repo>/../shared/models/stories260K.gguf)' },
  tokenizer: { kind: 'string', arg: 'PATH', help: 'tokenizer.bin for a llama2.c checkpoint (default: tokenizer.bin or\ntok<vocab>.bin beside it)' },
  context: { kind: 'int', arg: 'N', min: 1, help: "positions the KV cache holds (default: the model's, at most 4096)" },
} as const satisfies OptionSpecs;
/** What every command takes. */
export const OUTPUT_OPTIONS = {
  json: { kind: 'flag', help: 'print one JSON object instead of text' },
  help: { kind: 'flag', short: 'h', help: 'show this help' },
} as const satisfies OptionSpecs;

const FLAG_COLUMN = 24;

/** One option's lines of help: flags and argument, the meaning from column 24, the default after it. */
function optionHelp(name: string, s: OptionSpec, column: number): string {
  const flags = `  ${s.short ? `-${s.short}, ` : '    '}--${name}${s.kind === 'flag' ? '' : ` ${s.arg}`}`;
  const dflt = 'default' in s && s.default !== undefined && !/default/.test(s.help) ? ` (default: ${s.default})` : '';
  const [first, ...more] = (s.help + dflt).split('\n');
  const lead = flags.length < column ? flags.padEnd(column) : `${flags}  `;
  return [lead + first, ...more.map((l) => ' '.repeat(column) + l)].join('\n');
}
/** The options' help lines, meanings from `column` (24 unless a command's flags are long). */
export const optionsHelp = (specs: OptionSpecs, column = FLAG_COLUMN) => Object.entries(specs).map(([n, s]) => optionHelp(n, s, column)).join('\n');

/** A negative number after an option that takes a value is that value (`--temperature -1`), not a
 *  flag: util.parseArgs would call it ambiguous, so it is joined as `--temperature=-1`. */
function joinNegatives(argv: readonly string[], specs: OptionSpecs): string[] {
  const takesValue = new Set<string>();
  for (const [name, s] of Object.entries(specs)) if (s.kind !== 'flag') { takesValue.add(`--${name}`); if (s.short) takesValue.add(`-${s.short}`); }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!, next = argv[i + 1];
    if (takesValue.has(a) && next !== undefined && /^-(\d|\.\d)/.test(next)) { out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`); i++; }
    else out.push(a);
  }
  return out;
}

function checkedNumber(raw: string, name: string, s: OptionSpec & { kind: 'int' | 'number' }): number {
  const n = Number(raw);
  if (s.kind === 'int') {
    if (raw.trim() === '' || !Number.isInteger(n) || n < s.min || (s.max !== undefined && n > s.max))
      throw new UsageError(`--${name} must be an integer ${s.max !== undefined ? `in [${s.min}, ${s.max}]` : `>= ${s.min}`}, got '${raw}'`);
  } else if (raw.trim() === '' || !Number.isFinite(n) || n < s.min || n > s.max) throw new UsageError(`--${name} must be a number in [${s.min}, ${s.max}], got '${raw}'`);
  return n;
}

/** An output path whose folder exists (else the command would do all its work and then fail to write). */
function checkedOutput(file: string, name: string): string {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--${name} ${file}: the folder ${path.dirname(file)} does not exist (create it first)`);
  return file;
}

/** argv -> the declared options' values (numbers checked, defaults filled in). `command` names the
 *  command in messages ('sae collect'). */
export function parseOptions<O extends OptionSpecs>(command: string, argv: readonly string[], specs: O): Values<O> {
  let raw: Record<string, string | boolean | string[] | undefined>;
  try {
    const options = Object.fromEntries(Object.entries(specs).map(([n, s]) => [n, { type: s.kind === 'flag' ? 'boolean' as const : 'string' as const, ...(s.short ? { short: s.short } : {}), ...(s.kind === 'string' && s.multiple ? { multiple: true } : {}) }]));
    raw = parseArgs({ args: joinNegatives(argv, specs), options, strict: true, allowPositionals: false }).values as typeof raw;
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} (see 'tapir ${command} --help')`);
  }
  const values: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(specs)) {
    const v = raw[name];
    switch (s.kind) {
      case 'flag': values[name] = v === true; break;
      case 'string': values[name] = v ?? (s.multiple ? [] : s.default); break;
      case 'output': values[name] = v === undefined ? undefined : checkedOutput(v as string, name); break;
      case 'int':
      case 'number': values[name] = v === undefined ? s.default : checkedNumber(v as string, name, s); break;
    }
  }
  return values as Values<O>;
}
