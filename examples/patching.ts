// Activation patching: which residual-stream positions carry the name from "Lily saw a dog" into the
// prediction, compared with "Tim saw a dog". Run: node --no-concurrent-recompilation dist/examples/patching.js
import { loadModel, activationPatching, defaultModel, releaseGpu } from 'tapir';

const model = await loadModel(defaultModel(), { contextLength: 32 });
const tok = model.tokenizer;
const r = await activationPatching(model, tok.encode('Lily saw a dog'), tok.encode('Tim saw a dog'),
  { target: tok.idOf(' and')!, distractor: tok.idOf('.')!, sites: ['resid_pre'] });
const site = r.sites[0]!;
console.log(`metric (logit " and" − logit "."): clean ${r.clean.toFixed(3)}, corrupted ${r.corrupted.toFixed(3)}`);
console.log(`          ${site.cols.map((c) => JSON.stringify(c).padEnd(8)).join(' ')}`);
site.rows.forEach((row, i) => console.log(`${row.padEnd(9)} ${site.scores[i]!.map((v) => (v ?? NaN).toFixed(2).padStart(8)).join(' ')}`));
model.dispose();
await releaseGpu();
process.exit(0);
