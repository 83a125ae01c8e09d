// Every command's --help text and a set of error messages, as the real `tapir` process prints them,
// against snapshots in test/__snapshots__/cli/: a change to the command line shows its diff here.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin', 'tapir.js');

function tapir(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr: stderr.split('\n').filter((l) => l && !/^Warning: .*artificially reduced/.test(l)).join('\n') });
    });
  });
}

const HELP = [
  [], ['--help'], ['generate', '--help'], ['logits', '--help'], ['graph', '--help'], ['synth', '--help'], ['compile', '--help'],
  ['hooks', '--help'], ['weights', '--help'], ['tokenize', '--help'], ['lens', '--help'], ['patch', '--help'], ['explain', '--help'], ['bench', '--help'], ['attn', '--help'],
  ['dla', '--help'], ['cache', '--help'], ['grad', '--help'], ['serve', '--help'], ['sae', '--help'], ['sae', 'collect', '--help'], ['sae', 'train', '--help'],
  ['sae', 'eval', '--help'], ['sae', 'features', '--help'], ['generate', '-h'],
];

/** mistakes a user makes; each must be one line on stderr and exit code 2 */
const ERRORS = [
  ['nope'], ['generate', '--bogus'], ['generate', '-n', 'abc'], ['generate', '--temperature', '-1'], ['generate', '--temperature', '200'],
  ['generate', '--top-p', '2'], ['generate', '--system', 'be brief'], ['generate', '--context', '0'], ['generate', '-m', '/nonexistent/model.gguf'],
  ['generate', 'stray'], ['logits'], ['logits', '--tokens', '1,x'], ['logits', '--tokens', '1,99999'], ['synth'],
  ['synth', '--preset', 'nope', '--dtype', 'f16', '--out', '/tmp/x.gguf'], ['synth', '--preset', 'tiny', '--dtype', 'f8', '--out', '/tmp/x.gguf'],
  ['synth', '--preset', 'tiny', '--dtype', 'f16', '--out', '/tmp/x.gguf', '--arch', 'gpt2'], ['lens'], ['lens', '-p', 'Lily', '--target', 'notapiece'],
  ['lens', '-p', 'Lily', '--top', '0'], ['patch', '--clean', 'a'], ['patch', '--clean', 'Lily saw', '--corrupt', 'Tim saw'],
  ['patch', '--clean', 'Lily saw', '--corrupt', 'Tim saw', '--target', ' and', '--sites', 'nope'], ['compile', '--disable-rule', 'nope'],
  ['compile', '--dump-after', 'nope'], ['cache', '-p', 'Lily'], ['grad', '-p', 'Lily', '--target', ' Lily', '--distractor', ' Tim', '--hooks', 'blocks.0.attn.hook_result', '--out', '/tmp/tapir-g.safetensors'],
  ['grad', '-p', 'Lily', '--target', ' Lily', '--metric', 'log-prob', '--distractor', ' Tim', '--hooks', 'hook_embed', '--out', '/tmp/tapir-g.safetensors'], ['grad', '-p', 'Lily', '--target', ' Lily', '--pos', '7', '--hooks', 'hook_embed', '--out', '/tmp/tapir-g.safetensors'], ['cache', '-p', 'Lily', '--hooks', 'blocks.*.hook_resid_psot', '--out', '/tmp/tapir-x.safetensors'],
  ['explain', '-p', 'Lily'], ['dla', '-p', 'Lily'], ['attn'], ['attn', '-p', 'Lily', '--layers', 'a'], ['sae', 'nope'], ['sae', 'train'],
  ['sae', 'collect', '--hook', 'x'], ['serve', '--port', '70000'], ['serve', '--sae-store', 'x'], ['bench', '--synth', 'tiny', '-m', 'x.gguf'],
  ['bench', '--prompt-tokens', '1'], ['hooks', '--bogus'],
];

describe('tapir --help', () => {
  it.each(HELP.map((a) => [a.join(' ') || '(no arguments)', a] as const))('%s', async (_name, args) => {
    const r = await tapir([...args]);
    expect(r.stderr).toBe('');
    await expect(`$ tapir ${args.join(' ')}\n[exit ${r.code}]\n${r.stdout}`).toMatchFileSnapshot(`__snapshots__/cli/help/${args.join('_').replace(/^-+/, '') || 'none'}.txt`);
  });
});

describe('tapir usage errors', () => {
  it('each is one line and exit code 2', async () => {
    const lines: string[] = [];
    for (const args of ERRORS) {
      const r = await tapir(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n'), args.join(' ')).toHaveLength(1);
      lines.push(`$ tapir ${args.map((a) => (/^[\w./,*-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}\n${r.stderr}`);
    }
    await expect(lines.join('\n') + '\n').toMatchFileSnapshot('__snapshots__/cli/errors.txt');
  });
});
