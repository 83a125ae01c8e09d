// Using tapir from TypeScript: load stories260K, generate greedily, and check the GPU's logits
// against the float64 reference forward pass.
// Run after setup: node --no-concurrent-recompilation dist/examples/generate.js
import { loadModel, defaultModel, releaseGpu } from 'tapir';

const model = await loadModel(defaultModel());
const result = await model.generate({ prompt: 'Lily and Ben', maxNewTokens: 40, temperature: 0 });
console.log(result.text);

const tokens = model.tokenizer.encode('Once upon a time');
const gpu = await model.logits(tokens);
const reference = model.reference();
let worst = 0;
tokens.forEach((token, pos) => {
  const want = reference.output({ token, pos }, 'logits');
  want.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - gpu[pos]![i]!))));
});
console.log(`largest |GPU - float64 reference| over ${tokens.length} positions: ${worst.toExponential(2)}`);

model.dispose();
await releaseGpu(); // a live device would keep the process running
process.exit(0); // and skip teardown of native objects in arbitrary order (see bin/tapir.js)
