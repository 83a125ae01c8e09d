// Model files are read piece by piece: loading a model's header and tensor table costs memory in
// proportion to the header, not the file, and each weight is read when it is used.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModelSource } from '../runtime/node/load.js';
import { synthModel } from '../runtime/synth/synth.js';
import { writeSynth } from './helpers/synth.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-stream-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('streamed model reading', () => {
  it('loading a 100 MB GGUF does not read its weights', () => {
    const file = writeSynth(synthModel('stories15M', 'f32'), path.join(dir, 's15.gguf'));
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(90e6);
    global.gc?.();
    const before = process.memoryUsage();
    const src = loadModelSource(file);
    const after = process.memoryUsage();
    const grew = after.rss - before.rss + (after.arrayBuffers - before.arrayBuffers);
    expect(grew, `memory grew by ${grew} bytes for a ${size}-byte file`).toBeLessThan(size / 5);
    // and a weight, when asked for, comes from the right place in the file
    const w = src.weights.get('blk.3.ffn_down.weight')!;
    expect(w.bytes.byteLength).toBe(288 * 768 * 4);
    expect(new Float32Array(w.bytes.slice().buffer).some((v) => v !== 0)).toBe(true);
  });
});
