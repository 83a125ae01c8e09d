// The mistakes a new user makes, each as a real `tapir` process: one clear line on stderr (Dawn's
// native "artificially reduced" warnings aside), exit code 2, no stack trace, no work done first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initSae } from '../runtime/sae/sae.js';
import { saveSaeLens } from '../runtime/sae/files.js';
import { writeStoreFromRows } from '../runtime/sae/store.js';
import { runProcess } from './helpers/process.js';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin', 'tapir.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-mistakes-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  // an SAE for blocks.2.hook_resid_post (64 wide in stories260K) that reads 32, and a store of 64-wide rows
  const dims = { dIn: 32, dSae: 64, arch: 'relu' as const, k: 0 };
  saveSaeLens(path.join(dir, 'sae32'), { dims, params: initSae(dims, 1), inputScale: 1, hook: 'blocks.2.hook_resid_post' });
  const fits = { ...dims, dIn: 64 };
  saveSaeLens(path.join(dir, 'sae64'), { dims: fits, params: initSae(fits, 1), inputScale: 1, hook: 'blocks.2.hook_resid_post' });
  writeStoreFromRows(path.join(dir, 'store'), new Float32Array(64 * 100), 64, { hook: 'blocks.2.hook_resid_post', perShard: 50 });
  fs.mkdirSync(path.join(dir, 'not-a-store'));
  fs.mkdirSync(path.join(dir, 'not-a-model'));
  fs.writeFileSync(path.join(dir, 'not-a-model', 'notes.txt'), 'hello');
});

const long = 'Once upon a time '.repeat(10);
const missing = (f: string) => path.join(dir, 'no', 'such', 'folder', f);
const MISTAKES: [string, string[], RegExp][] = [
  ['a misspelt flag', ['generate', '--temprature', '1'], /Unknown option '--temprature'/],
  ['a misspelt hook', ['cache', '-p', 'Once', '--hooks', 'blocks.0.hook_resid_pots', '--out', path.join(dir, 'a.safetensors')], /unknown hook 'blocks\.0\.hook_resid_pots'; the nearest hooks are blocks\.0\.hook_resid_post/],
  ['a layer out of range', ['cache', '-p', 'Once', '--hooks', 'blocks.9.hook_resid_post', '--out', path.join(dir, 'a.safetensors')], /layer 9 is out of range: the model has 5 layers/],
  ['a head out of range', ['cache', '-p', 'Once', '--hooks', 'blocks.0.attn.hook_z[head=99]', '--out', path.join(dir, 'a.safetensors')], /head 99 is out of range \(0\.\.7\)/],
  ['a selector with an unknown filter', ['cache', '-p', 'Once', '--hooks', 'blocks.0.hook_resid_post[layer=1]', '--out', path.join(dir, 'a.safetensors')], /has the filter \[layer=\.\.\.\], which hooks do not take/],
  ['cache --out in a missing folder', ['cache', '-p', 'Once', '--hooks', 'resid_post', '--out', missing('a.safetensors')], /--out .*: the folder .* does not exist/],
  ['lens --svg in a missing folder', ['lens', '-p', 'Once', '--svg', missing('a.svg')], /--svg .*: the folder .* does not exist/],
  ['explain --html in a missing folder', ['explain', '-p', 'Once upon a time', '--html', missing('a.html')], /--html .*: the folder .* does not exist/],
  ['sae train --out in a missing folder', ['sae', 'train', '--store', path.join(dir, 'store'), '--out', missing('sae')], /--out .*: the folder .* does not exist/],
  ['a missing model file', ['generate', '-m', path.join(dir, 'missing.gguf')], /model path '.*missing\.gguf' does not exist/],
  ['a folder that is not a model', ['generate', '-m', path.join(dir, 'not-a-model')], /not-a-model is not a model folder/],
  ['--temperature -1', ['generate', '--temperature', '-1'], /--temperature must be a number in \[0, 100\], got '-1'/],
  ['-n 0', ['generate', '-n', '0'], /--new-tokens must be an integer >= 1, got '0'/],
  ['a piece not in the vocabulary', ['lens', '-p', 'Once', '--target', ' Zzzqx'], /the piece ' Zzzqx' is not a vocabulary entry; it tokenizes as/],
  ['patch prompts of unequal length', ['patch', '--clean', 'Lily saw a dog', '--corrupt', 'Tim saw a big dog', '--target', ' and', '--distractor', '.'], /the clean prompt has 6 tokens and the corrupted one 7/],
  ['a target token id past the vocabulary', ['lens', '-p', 'Once', '--target-id', '99999'], /target token 99999 is outside the vocabulary/],
  ['--top 0', ['lens', '-p', 'Once', '--top', '0'], /--top must be an integer >= 1, got '0'/],
  ['--context 0', ['generate', '--context', '0'], /--context must be an integer >= 1, got '0'/],
  ["an SAE whose d_in does not match its hook", ['sae', 'eval', '--sae', path.join(dir, 'sae32'), '--store', path.join(dir, 'store')], /blocks\.2\.hook_resid_post.*64.*32|32.*blocks\.2\.hook_resid_post.*64/],
  ['a store folder that is not a store', ['sae', 'eval', '--sae', path.join(dir, 'sae64'), '--store', path.join(dir, 'not-a-store')], /is not an activation store \(no manifest\.json\)/],
  ['an unknown command', ['frobnicate'], /unknown command 'frobnicate' \(commands: generate, /],
  ['serve --port 70000', ['serve', '--port', '70000'], /--port must be an integer in \[0, 65535\], got '70000'/],
  ['a prompt longer than the context', ['generate', '--context', '16', '-p', long], /the prompt has \d+ tokens but the context holds 16/],
];

describe('natural mistakes: one clear line, exit code 2', () => {
  it.each(MISTAKES)('%s', async (_, args, message) => {
    const r = await runProcess(bin, args, { cwd: dir, timeout: 60_000 });
    const lines = r.stderr.split('\n').filter((l) => l && !/^Warning: .*artificially reduced/.test(l));
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^tapir: error: /);
    expect(lines[0]).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });
});
