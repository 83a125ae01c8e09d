// The logit lens: which token each layer would predict at each position of a prompt.
// Run: node --no-concurrent-recompilation dist/examples/lens.js
import { loadModel, defaultModel, logitLens, releaseGpu } from 'tapir';

const model = await loadModel(defaultModel(), { contextLength: 64 });
const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named');
const lens = await logitLens(model, tokens, { target: model.tokenizer.idOf(' Lily') });
for (const layer of lens.layers) {
  const last = layer.cells.at(-1)!;
  console.log(`${layer.hook.padEnd(26)} predicts ${JSON.stringify(last.top[0]!.piece).padEnd(10)} P(" Lily") = ${last.target!.prob.toFixed(4)} (rank ${last.target!.rank})`);
}
model.dispose();
await releaseGpu();
process.exit(0);
