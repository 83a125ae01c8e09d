// One CLI command: its usage line, what it does, its options (declared once, cli/options.ts) and its
// run. cli/main.ts dispatches to these; each lives in cli/commands/NAME.ts.
import { MODEL_OPTIONS, OUTPUT_OPTIONS, optionsHelp, parseOptions, type OptionSpecs, type Values } from './options.js';

export interface Command<O extends OptionSpecs = OptionSpecs> {
  /** as typed: 'generate', 'sae collect' */
  readonly name: string;
  /** one line (or a few) for `tapir --help` */
  readonly summary: string;
  /** the usage line(s) after 'Usage: ' */
  readonly usage: string;
  /** what it does, before the options */
  readonly about: string;
  /** its own options; those of the model (-m, --tokenizer, --context) come after unless `model` is false */
  readonly options: O;
  readonly model?: boolean;
  /** where its own options' meanings start (default 24) */
  readonly column?: number;
  /** a paragraph after the options */
  readonly after?: string;
  /** the option a bare first argument gives (`tapir tokenize TEXT`) */
  readonly positional?: string;
  /** names in the help filled in at help time (lists of presets, rules, ...) */
  readonly fill?: () => Record<string, string>;
  run(o: Values<O & typeof MODEL_OPTIONS & typeof OUTPUT_OPTIONS>): Promise<void>;
}

/** A command with its options' types flowing into `run`. */
export const command = <const O extends OptionSpecs>(c: Command<O>): Command<O> => c;

/** All the options a command accepts, in help order. */
export const allOptions = (c: Command): OptionSpecs => ({ ...c.options, ...(c.model === false ? {} : MODEL_OPTIONS), ...OUTPUT_OPTIONS });

export function helpOf(c: Command): string {
  const fill = c.fill?.() ?? {};
  const shared = { ...(c.model === false ? {} : MODEL_OPTIONS), ...OUTPUT_OPTIONS };
  const own = Object.keys(c.options).length ? [optionsHelp(c.options, c.column)] : [];
  const text = [`Usage: ${c.usage}`, '', c.about, ...own, optionsHelp(shared), ...(c.after ? ['', c.after] : [])].join('\n');
  return text.replace(/\$\{(\w+)\}/g, (m, k: string) => fill[k] ?? m);
}

/** Parse argv for `c` and run it; --help prints the help instead. */
export async function runCommand(c: Command, argv: readonly string[], write: (s: string) => void): Promise<void> {
  const args = c.positional && argv[0] !== undefined && !argv[0].startsWith('-') ? [`--${c.positional}`, ...argv] : argv;
  const o = parseOptions(c.name, args, allOptions(c)) as Values<typeof MODEL_OPTIONS & typeof OUTPUT_OPTIONS>;
  if (o.help) return write(helpOf(c) + '\n');
  await (c.run as (o: unknown) => Promise<void>)(o);
}
