// The real `tapir` process: output shapes, --help, and bad input. Bad input must give one line on
// stderr, exit code 2, no stack trace, and the process must end (a live GPU device would keep it).
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeGGUF } from '../runtime/formats/gguf_write.js';
import { BIN, GGUF, TOK } from './helpers/models.js';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin', 'tapir.js');

function tapir(...args: string[]) {
  // through the shebang, as a user runs it
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000, maxBuffer: 64 << 20 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => l && !/^Warning: .*artificially reduced/.test(l)) };
}

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-cli-'));
  const gguf = fs.readFileSync(GGUF);
  const put = (name: string, bytes: Uint8Array) => { fs.writeFileSync(path.join(dir, name), bytes); return path.join(dir, name); };
  put('truncated.gguf', gguf.subarray(0, 20000));
  put('magic.gguf', Buffer.concat([Buffer.from('GGUX'), gguf.subarray(4)]));
  put('past-end.gguf', writeGGUF([], [{ name: 't', dims: [16], type: 0, data: new Uint8Array(64) }]).subarray(0, 96));
  put('overflow.gguf', writeGGUF([], [{ name: 't', dims: [2n ** 40n, 2n ** 40n, 2n ** 40n], type: 0, data: new Uint8Array(4) }]));
  put('dtype.gguf', writeGGUF([], [{ name: 't', dims: [4], type: 77, data: new Uint8Array(16) }]));
  put('proto.gguf', writeGGUF([['__proto__', { type: 'string', value: 'x' }]], []));
  put('truncated.bin', fs.readFileSync(BIN).subarray(0, 4000));
  put('empty.bin', new Uint8Array(0));
});

describe('tapir CLI', () => {
  it('generate --json: tokens start with BOS and include the prompt, with text and timings', () => {
    const r = tapir('generate', '-p', 'Once upon a time', '-n', '12', '--json');
    expect(r.code, r.stderr.join('\n')).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.tokens.slice(0, 5)).toEqual([1, 403, 407, 261, 378]);
    expect(o.tokens.length).toBe(17);
    expect(o.text.startsWith('Once upon a time')).toBe(true);
    expect(o.timings.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('generate runs a llama2.c checkpoint with --tokenizer and streams text', () => {
    const r = tapir('generate', '-m', BIN, '--tokenizer', TOK, '-n', '20', '--temperature', '0');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Once upon a time, there was a little girl named Lily/);
  });

  it('sampling is reproducible with a seed', () => {
    const a = tapir('generate', '-n', '30', '--temperature', '1', '--top-p', '0.9', '--seed', '7', '--json');
    const b = tapir('generate', '-n', '30', '--temperature', '1', '--top-p', '0.9', '--seed', '7', '--json');
    expect(JSON.parse(a.stdout).tokens).toEqual(JSON.parse(b.stdout).tokens);
  });

  it('logits --json prints one row per position', () => {
    const r = tapir('logits', '--tokens', '1,403,407', '--json');
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.tokens).toEqual([1, 403, 407]);
    expect(o.logits.length).toBe(3);
    expect(o.logits.every((row: number[]) => row.length === 512 && row.every(Number.isFinite))).toBe(true);
  });

  it.each(['generate', 'logits', 'graph'])('%s --help', (cmd) => {
    const r = tapir(cmd, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tapir/);
  });

  const cases: [string, () => string[], RegExp][] = [
    ['a missing model path', () => ['generate', '-m', path.join(dir, 'nope.gguf')], /does not exist/],
    ['a truncated GGUF', () => ['generate', '-m', path.join(dir, 'truncated.gguf')], /truncated|past the end/],
    ['a wrong magic', () => ['generate', '-m', path.join(dir, 'magic.gguf')], /not a GGUF file/],
    ['tensor offsets past the end', () => ['generate', '-m', path.join(dir, 'past-end.gguf')], /past the end|truncated/],
    ['dims whose product overflows', () => ['generate', '-m', path.join(dir, 'overflow.gguf')], /more elements than the file can hold/],
    ['an unknown dtype', () => ['generate', '-m', path.join(dir, 'dtype.gguf')], /unknown type 77/],
    ['a __proto__ metadata key', () => ['generate', '-m', path.join(dir, 'proto.gguf')], /'__proto__' is not allowed/],
    ['a truncated llama2.c checkpoint', () => ['generate', '-m', path.join(dir, 'truncated.bin'), '--tokenizer', TOK], /truncated/],
    ['an empty file', () => ['generate', '-m', path.join(dir, 'empty.bin'), '--tokenizer', TOK], /truncated/],
    ['a prompt longer than the context', () => ['generate', '--context', '4', '-p', 'Once upon a time there was'], /the prompt has \d+ tokens but the context holds 4/],
    ['a token outside the vocabulary', () => ['logits', '--tokens', '1,512'], /outside the vocabulary/],
    ['an unknown option', () => ['generate', '--frobnicate'], /Unknown option '--frobnicate'/],
    ['a bad number', () => ['generate', '-n', 'many'], /--new-tokens must be an integer/],
    ['an unknown command', () => ['frobnicate'], /unknown command/],
  ];
  it.each(cases)('%s: one clear line, exit code 2', (_, args, msg) => {
    const r = tapir(...args());
    expect(r.signal, 'the process must end by itself').toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr.length, r.stderr.join('\n')).toBe(1);
    expect(r.stderr[0]).toMatch(/^tapir: error: /);
    expect(r.stderr[0]).toMatch(msg);
    expect(r.stderr.join('\n')).not.toMatch(/^\s+at /m);
  });
});
