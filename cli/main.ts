// The `tapir` command line: a dispatcher over cli/commands/, one file per command, each declaring its
// options once (cli/options.ts) so parsing and --help come from the same place. Every command takes
// --help and --json; a user's mistake (bad flag, bad file, too long a prompt) prints one line and
// exits with code 2.
import { TapirError, UsageError } from '../compiler/errors.js';
import { releaseGpu } from '../runtime/gpu.js';
import { runCommand, type Command } from './command.js';
import { out } from './common.js';
import attn from './commands/attn.js';
import bench from './commands/bench.js';
import cache from './commands/cache.js';
import grad from './commands/grad.js';
import compile from './commands/compile.js';
import dla from './commands/dla.js';
import explain from './commands/explain.js';
import generate from './commands/generate.js';
import graph from './commands/graph.js';
import hooks from './commands/hooks.js';
import weights from './commands/weights.js';
import lens from './commands/lens.js';
import logits from './commands/logits.js';
import patch from './commands/patch.js';
import saeCollect from './commands/sae_collect.js';
import saeEval from './commands/sae_eval.js';
import saeFeatures from './commands/sae_features.js';
import saeTrain from './commands/sae_train.js';
import serve from './commands/serve.js';
import synth from './commands/synth.js';
import tokenize from './commands/tokenize.js';

/** A command that holds subcommands (`tapir sae collect`). */
interface Group { readonly name: string; readonly summary: string; readonly about: string; readonly commands: readonly Command[] }

const sae: Group = {
  name: 'sae',
  summary: 'sparse autoencoders: collect activations, train on the GPU, evaluate (sae --help)',
  about: 'Sparse autoencoders at a hook of the model, in SAELens\'s file layout.',
  commands: [saeCollect, saeTrain, saeEval, saeFeatures] as Command[],
};

// in the order `tapir --help` lists them
const COMMANDS: readonly (Command | Group)[] = [generate, logits, graph, synth, compile, hooks, weights, tokenize, lens, patch, explain, bench, attn, dla, cache, grad, sae, serve] as (Command | Group)[];

const listing = (cs: readonly { name: string; summary: string }[], indent: number) =>
  cs.map((c) => `  ${c.name.split(' ').pop()!.padEnd(indent - 2)}${c.summary.replace(/\n/g, '\n' + ' '.repeat(indent))}`).join('\n');

const MAIN_HELP = `tapir — run Llama-family models on WebGPU, and see why they say what they say

Usage: tapir <command> [options]

Commands:
${listing(COMMANDS, 13)}

Run 'tapir <command> --help' for a command's options.`;

const groupHelp = (g: Group) => `Usage: ${g.commands.map((c) => c.usage).join('\n       ')}

${g.about}

${listing(g.commands, 12)}

Run 'tapir ${g.name} <command> --help' for a command's options.`;

async function dispatch(argv: readonly string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  const found = COMMANDS.find((c) => c.name === cmd);
  if (!found) throw new UsageError(`unknown command '${cmd}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
  if (!('commands' in found)) return runCommand(found, rest, out);
  const [sub, ...subRest] = rest;
  if (!sub || sub === '--help' || sub === '-h') return out(groupHelp(found) + '\n');
  const c = found.commands.find((x) => x.name === `${found.name} ${sub}`);
  if (!c) throw new UsageError(`unknown ${found.name} command '${sub}' (${found.commands.map((x) => x.name.split(' ').pop()).join(', ')})`);
  return runCommand(c, subRest, out);
}

/** Runs a command; returns the exit code. Always releases the GPU so the process can exit. */
export async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      out(MAIN_HELP + '\n');
      return cmd ? 0 : 2;
    }
    await dispatch(argv);
    return 0;
  } catch (e) {
    if (e instanceof TapirError) {
      process.stderr.write(`tapir: error: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`tapir: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  } finally {
    await releaseGpu();
  }
}
