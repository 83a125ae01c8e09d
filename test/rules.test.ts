// Each fusion rule as IR text in -> IR text out: where it fires, and where it must not. Rules run
// alone here (the pipeline runs them together); the rewrite reaches a fixed point and refuses loops.
import { describe, expect, it } from 'vitest';
import { parseGraph, IRParseError } from '../compiler/ir/text.js';
import { rewrite } from '../compiler/rewrite.js';
import { RULES } from '../ops/rules.js';
import type { Rule } from '../compiler/rewrite.js';
import { llama } from '../models/llama.js';
import { OPSET } from '../ops/index.js';

const parse = (text: string) => parseGraph(text, OPSET);
const rule = (name: string) => RULES.find((r) => r.name === name)!;
const run = (text: string, ...names: string[]) => rewrite(parse(text), names.map(rule)).graph.toString();
const ir = (s: string) => s.replace(/^\s+/gm, '').trim() + '\n';

const X = `%0 = input() {name="x" shape=[4] dtype="f32"} : f32[4]
  %1 = weight() {name="nw" shape=[4] dtype="f32"} : f32[4]
  %2 = weight() {name="w" shape=[3,4] dtype="f32"} : f32[3,4]`;

describe('norm_into_matvec', () => {
  it('fires: matvec(W, rmsnorm(x, nw)) -> matvec{norm}(W, x, nw)', () => {
    expect(run(ir(`${X}
      %3 = rmsnorm(%0, %1) {eps=0.00001} : f32[4]
      %4 = matvec(%2, %3) : f32[3]
      return y=%4`), 'norm_into_matvec')).toBe(ir(`${X}
      %3 = matvec(%2, %0, %1) {norm=true eps=0.00001} : f32[3]
      return y=%3`));
  });
  it('does not fire on a matvec of anything else, or one that already has a norm', () => {
    const text = ir(`${X}
      %3 = add(%0, %1) : f32[4]
      %4 = matvec(%2, %3) : f32[3]
      %5 = rmsnorm(%0, %1) {eps=0.00001} : f32[4]
      %6 = matvec(%2, %5, %1) {norm=true eps=0.00001} : f32[3]
      %7 = add(%4, %6) : f32[3]
      return y=%7`);
    expect(run(text, 'norm_into_matvec')).toBe(text);
  });
});

describe('add_into_matvec and scale_into_matvec', () => {
  const B = `%0 = input() {name="x" shape=[4] dtype="f32"} : f32[4]
    %1 = weight() {name="w" shape=[3,4] dtype="f32"} : f32[3,4]
    %2 = weight() {name="b" shape=[3] dtype="f32"} : f32[3]`;
  it('fire: a bias or residual add, then a scale, become epilogues', () => {
    expect(run(ir(`${B}
      %3 = matvec(%1, %0) : f32[3]
      %4 = add(%2, %3) : f32[3]
      %5 = scale(%4) {factor=0.5} : f32[3]
      return y=%5`), 'add_into_matvec', 'scale_into_matvec')).toBe(ir(`${B}
      %3 = matvec(%1, %0, %2) {epilogues=[{name="add"}, {name="scale" value=0.5}]} : f32[3]
      return y=%3`));
  });
  it('fire with a store when the matvec result is also read elsewhere: the other reader reads the stored value', () => {
    // (a tap survives fusion: the kernel writes the pre-add value on the side; nothing is computed twice)
    expect(run(ir(`${B}
      %3 = matvec(%1, %0) : f32[3]
      %4 = add(%2, %3) : f32[3]
      %5 = scale(%3) {factor=0.5} : f32[3]
      return y=%4 z=%5`), 'add_into_matvec', 'scale_into_matvec')).toBe(ir(`${B}
      %3 = matvec(%1, %0, %2) {epilogues=[{name="store"}, {name="add"}]} : f32[3]
      %4 = stored(%3) {n=0 shape=[3]} : f32[3]
      %5 = scale(%4) {factor=0.5} : f32[3]
      return y=%3 z=%5`));
  });
});

describe('add_into_grad', () => {
  const D = `%0 = input() {name="dq" shape=[2,3] dtype="f32"} : f32[2,3]
    %1 = input() {name="dk" shape=[2,3] dtype="f32"} : f32[2,3]
    %2 = weight() {name="wq" shape=[3,4] dtype="f32"} : f32[3,4]
    %3 = weight() {name="wk" shape=[3,4] dtype="f32"} : f32[3,4]`;
  it('fires: the sum of two transposed products is made by one of them', () => {
    expect(run(ir(`${D}
      %4 = matvec_t(%2, %0) : f32[2,4]
      %5 = matvec_t(%3, %1) : f32[2,4]
      %6 = add(%4, %5) : f32[2,4]
      return y=%6`), 'add_into_grad')).toBe(ir(`${D}
      %4 = matvec_t(%3, %1) : f32[2,4]
      %5 = matvec_t(%2, %0, %4) {acc=true} : f32[2,4]
      return y=%5`));
  });
  it('fires on a norm gradient: the residual stream\'s other gradient added by rmsnorm_grad', () => {
    const N = `%0 = input() {name="x" shape=[2,4] dtype="f32"} : f32[2,4]
      %1 = weight() {name="nw" shape=[4] dtype="f32"} : f32[4]
      %2 = input() {name="dy" shape=[2,4] dtype="f32"} : f32[2,4]
      %3 = input() {name="g" shape=[2,4] dtype="f32"} : f32[2,4]`;
    expect(run(ir(`${N}
      %4 = rmsnorm_grad(%0, %1, %2) {eps=0.00001} : f32[2,4]
      %5 = add(%3, %4) : f32[2,4]
      return y=%5`), 'add_into_grad')).toBe(ir(`${N}
      %4 = rmsnorm_grad(%0, %1, %2, %3) {eps=0.00001 acc=true} : f32[2,4]
      return y=%4`));
  });
  it('does not fire where the product is read elsewhere too (a gradient asked for there)', () => {
    const text = ir(`%0 = input() {name="dq" shape=[2,3] dtype="f32"} : f32[2,3]
      %1 = weight() {name="wq" shape=[3,4] dtype="f32"} : f32[3,4]
      %2 = matvec_t(%1, %0) : f32[2,4]
      %3 = input() {name="g" shape=[2,4] dtype="f32"} : f32[2,4]
      %4 = add(%3, %2) : f32[2,4]
      return y=%4 z=%2`);
    expect(run(text, 'add_into_grad')).toBe(text);
  });
});

describe('gate_up', () => {
  const G = `%0 = input() {name="x" shape=[4] dtype="f32"} : f32[4]
    %1 = weight() {name="nw" shape=[4] dtype="f32"} : f32[4]
    %2 = weight() {name="wg" shape=[6,4] dtype="f32"} : f32[6,4]
    %3 = weight() {name="wu" shape=[6,4] dtype="f32"} : f32[6,4]`;
  it('fires: silu_mul of two normed matvecs of the same x', () => {
    expect(run(ir(`${G}
      %4 = matvec(%2, %0, %1) {norm=true eps=0.00001} : f32[6]
      %5 = matvec(%3, %0, %1) {norm=true eps=0.00001} : f32[6]
      %6 = silu_mul(%4, %5) : f32[6]
      return y=%6`), 'gate_up')).toBe(ir(`${G}
      %4 = ffn_gate_up(%0, %1, %2, %3) {eps=0.00001} : f32[6]
      return y=%4`));
  });
  it('does not fire when the two matvecs read different vectors', () => {
    const text = ir(`${G}
      %4 = weight() {name="nw2" shape=[4] dtype="f32"} : f32[4]
      %5 = matvec(%2, %0, %1) {norm=true eps=0.00001} : f32[6]
      %6 = matvec(%3, %0, %4) {norm=true eps=0.00001} : f32[6]
      %7 = silu_mul(%5, %6) : f32[6]
      return y=%7`);
    expect(run(text, 'gate_up')).toBe(text);
  });
});

// the attention rules match a whole layer: take its IR from the model definition
const layer = llama({ dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 12, contextLength: 8, ropeTheta: 10000, rotDim: 4, rmsEps: 1e-5, tiedEmbeddings: true }).toString();

describe('qkv, rope_kv and flash_attention', () => {
  const normed = run(layer, 'norm_into_matvec');
  it('qkv fires on normed Q/K/V of one vector feeding attention, leaving slices', () => {
    const out = run(normed, 'qkv');
    expect(out).toMatch(/= qkv_matvec\(%\d+, %\d+, %\d+, %\d+, %\d+\) \{eps=0\.0000\d+\} : f32\[32\]/);
    expect(out.match(/= slice\(/g)).toHaveLength(3);
    expect(out).not.toMatch(/matvec\(%\d+, %\d+, %\d+\) \{norm=true[^\n]*: f32\[8\]/); // k and v matvecs are gone
  });
  it('qkv does not fire before the norm is folded in (the matvecs read different nodes than it expects)', () => {
    expect(run(layer, 'qkv')).toBe(layer);
  });
  it('rope_kv fires on the slices of a qkv_matvec, and not on a plain layer', () => {
    const out = run(run(normed, 'qkv'), 'rope_kv');
    expect(out).toMatch(/= rope_kv\(%\d+, %1, %2, %\d+, %\d+\) \{headSize=4 qDim=16 kvDim=8\} : f32\[16\]/);
    expect(out).not.toMatch(/= (rope|kv_write|slice)\(/);
    expect(run(normed, 'rope_kv')).toBe(normed);
  });
  it('flash_attention marks attention once', () => {
    const out = run(layer, 'flash_attention');
    expect(out.match(/= attention\([^\n]*flash=true/g)).toHaveLength(1);
    expect(run(out, 'flash_attention')).toBe(out);
  });
});

describe('the rewrite', () => {
  it('reaches a fixed point: the fused graph does not change when rewritten again', () => {
    const once = rewrite(parse(layer), RULES);
    expect(once.sweeps).toBeGreaterThan(1);
    const again = rewrite(once.graph, RULES);
    expect(again.fired).toEqual({});
    expect(again.graph.toString()).toBe(once.graph.toString());
  });
  it('refuses a rule set that loops instead of hanging', () => {
    const flip: Rule = { name: 'flip', why: 'a loop, on purpose', rewrite: (n, c) => (n.op.name === 'scale' ? c.g.apply(OPSET.ops.get('scale')!, n.srcs, { factor: -Number(n.attr.factor) }) : undefined) };
    const g = parse(ir(`%0 = input() {name="x" shape=[2] dtype="f32"} : f32[2]
      %1 = scale(%0) {factor=2} : f32[2]
      return y=%1`));
    expect(() => rewrite(g, [flip])).toThrow(/did not reach a fixed point/);
  });
});

describe('textual IR', () => {
  it('round-trips the model graph, unfused and fused', () => {
    expect(parse(layer).toString()).toBe(layer);
    const fused = rewrite(parse(layer), RULES).graph.toString();
    expect(parse(fused).toString()).toBe(fused);
  });
  it('reads records and lists of records; a record is one value whatever order its keys are written in', () => {
    const at = (fields: string) => parse(ir(`%0 = input() {name="x" shape=[4] dtype="f32"} : f32[4]
      %1 = weight() {name="w" shape=[3,4] dtype="f32"} : f32[3,4]
      %2 = matvec(%1, %0) {epilogues=[${fields}]} : f32[3]
      %3 = matvec(%1, %0) {epilogues=[{name="scale" value=0.5}]} : f32[3]
      return y=%2 z=%3`));
    const g = at('{value=0.5 name="scale"}');
    expect(g.outputs.y).toBe(g.outputs.z); // hash-consed: the same node
    expect(g.outputs.y!.attr.epilogues).toEqual([{ name: 'scale', value: 0.5 }]);
    expect(at('{name="scale" value=0.25}').outputs.y).not.toBe(at('{name="scale" value=0.25}').outputs.z);
  });
  it.each([
    ['an unknown op', '%0 = frob() : f32[1]\nreturn y=%0\n', /unknown op 'frob'/],
    ['a type that does not match', '%0 = input() {name="x" shape=[2] dtype="f32"} : f32[3]\nreturn y=%0\n', /gives f32\[2\], the text says f32\[3\]/],
    ['a reference before its definition', '%0 = add(%1, %1) : f32[2]\nreturn y=%0\n', /%1 is used before it is defined/],
    ['bad syntax', '%0 = = input()\n', /Line 1/],
  ])('rejects %s', (_, text, msg) => {
    expect(() => parse(text)).toThrow(msg);
    expect(() => parse(text)).toThrow(IRParseError);
  });
});
