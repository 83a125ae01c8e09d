// tapir explain's faithfulness over a committed set of stories260K decisions (issue 9):
//   node --no-concurrent-recompilation dist/benchmarks/explain.js [--json]
//     for every prompt in benchmarks/explain_prompts.json: the deletion curve's mean over k for the
//     top-attributed words and for random words; printed per prompt and averaged.
//   node --no-concurrent-recompilation dist/benchmarks/explain.js --search N
//     writes the set anew: prompts cut from the model's own stories (seeded samples) where the next
//     token is a clear decision (top probability >= 0.5, top-2 logit gap >= 1), up to N of them.
import fs from 'node:fs';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { releaseGpu } from '../runtime/gpu.js';
import { defaultModel, loadModelSource } from '../runtime/node/load.js';
import { explain, wordsOf } from '../runtime/interp/explain.js';

const file = path.resolve(import.meta.dirname, '..', '..', 'benchmarks', 'explain_prompts.json');
const model = await Model.create(loadModelSource(defaultModel()), { contextLength: 128 });
const tok = model.tokenizer;
const piece = (id: number) => new TextDecoder().decode(tok.tokenBytes(id, tok.vocab.eos));
interface Decision { prompt: string; answer: string; alternative: string; probability: number; gap: number }

const search = process.argv.indexOf('--search');
if (search >= 0) {
  const want = Number(process.argv[search + 1] ?? 24);
  const found: Decision[] = [];
  const seen = new Set<string>();
  for (let seed = 1; found.length < want && seed < 400; seed++) {
    const story = await model.generate({ maxNewTokens: 60, temperature: 0.9, topP: 0.9, seed, stopAtEos: true });
    const ids = story.tokens;
    // cut after a word at a random-ish place (at least 6 words in), the next token starting a word
    const pieces = ids.map((t, i) => (i === 0 ? '' : piece(t)));
    for (let cut = 8; cut < ids.length - 1; cut += 5) {
      if (!/^ \p{L}/u.test(pieces[cut]!) || wordsOf(pieces.slice(0, cut)).length < 6) continue;
      const prompt = tok.decode(ids.slice(0, cut));
      if (seen.has(prompt)) continue;
      const toks = tok.encode(prompt);
      if (toks.length !== cut) continue; // the text must tokenize back to the same ids
      const l = (await model.logits(toks))[toks.length - 1]!;
      const order = [...l.keys()].sort((a, b) => l[b]! - l[a]!);
      const max = l[order[0]!]!;
      const p = Math.exp(0) / l.reduce((s, v) => s + Math.exp(v - max), 0);
      const gap = max - l[order[1]!]!;
      if (p >= 0.5 && gap >= 1 && /^ \p{L}/u.test(piece(order[0]!))) {
        seen.add(prompt);
        found.push({ prompt, answer: piece(order[0]!), alternative: piece(order[1]!), probability: +p.toFixed(4), gap: +gap.toFixed(4) });
        break; // one decision a story
      }
    }
  }
  fs.writeFileSync(file, JSON.stringify(found, null, 1) + '\n');
  console.log(`${found.length} decisions -> ${file}`);
} else {
  const set = JSON.parse(fs.readFileSync(file, 'utf8')) as Decision[];
  const rows: { prompt: string; answer: string; logitDiff: number; words: number; top: number; random: number; passes: boolean }[] = [];
  for (const d of set) {
    const e = await explain(model, tok.encode(d.prompt), { answer: tok.idOf(d.answer)!, alternative: tok.idOf(d.alternative)!, draws: 20, seed: 0 });
    rows.push({ prompt: d.prompt, answer: d.answer, logitDiff: e.logitDiff, words: e.words.length, top: e.faithfulness.topMean, random: e.faithfulness.randomMean, passes: e.faithfulness.passes });
    if (!process.argv.includes('--json')) console.log(`${e.faithfulness.passes ? 'pass' : 'FAIL'}  top ${e.faithfulness.topMean.toFixed(3).padStart(7)}  random ${e.faithfulness.randomMean.toFixed(3).padStart(7)}  ${JSON.stringify(d.prompt.slice(-50))} -> ${JSON.stringify(d.answer)}`);
  }
  const mean = (f: (r: (typeof rows)[number]) => number) => rows.reduce((s, r) => s + f(r), 0) / rows.length;
  const summary = { prompts: rows.length, topMean: mean((r) => r.top), randomMean: mean((r) => r.random), passing: rows.filter((r) => r.passes).length };
  if (process.argv.includes('--json')) console.log(JSON.stringify({ summary, rows }));
  else console.log(`\n${summary.prompts} decisions: occluding the top-k words moves the decision by ${summary.topMean.toFixed(3)} on average, random words by ${summary.randomMean.toFixed(3)}; ${summary.passing}/${summary.prompts} prompts pass`);
}
model.dispose();
await releaseGpu();
