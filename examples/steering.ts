// Steering: add a direction to the residual stream at one layer and watch the story change. The
// direction is the difference between two runs' activations ("Lily" minus "Tom" at layer 2).
// Run: node --no-concurrent-recompilation dist/examples/steering.js
import { loadModel, defaultModel, releaseGpu } from 'tapir';

const model = await loadModel(defaultModel(), { contextLength: 64 });
const tok = model.tokenizer;
const hook = 'blocks.2.hook_resid_post';
const last = async (text: string) => {
  const { cache } = await model.runWithCache(tok.encode(text), { hooks: `${hook}[pos=-1]` });
  return cache.get(`${hook}[pos=-1]`)!.data;
};
const [a, b] = [await last('Once upon a time there was a girl named Lily'), await last('Once upon a time there was a boy named Tom')];
const direction = a.map((v, i) => 2 * (v - b[i]!));
const prompt = tok.encode('Once upon a time there was a boy named');
const greedyNext = (logits: Float32Array[]) => tok.piece(logits.at(-1)!.indexOf(Math.max(...logits.at(-1)!)));
const plain = await model.runWithHooks(prompt, { interventions: [] });
const steered = await model.runWithHooks(prompt, { interventions: [{ hook: `${hook}[pos=-1]`, add: direction }] });
console.log(`next token without steering: ${JSON.stringify(greedyNext(plain.logits))}`);
console.log(`next token with steering:    ${JSON.stringify(greedyNext(steered.logits))}`);
model.dispose();
await releaseGpu();
process.exit(0);
