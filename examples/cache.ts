// Run a prompt with a cache: the residual stream after every block and one attention head's output,
// by TransformerLens's hook names. Run: node --no-concurrent-recompilation dist/examples/cache.js
import { loadModel, defaultModel, releaseGpu } from 'tapir';

const model = await loadModel(defaultModel(), { contextLength: 64 });
const tokens = model.tokenizer.encode('Lily and Ben went to the park');
const { cache } = await model.runWithCache(tokens, { hooks: 'blocks.*.hook_resid_post,blocks.2.attn.hook_z[head=5]' });
for (const [name, { shape, data }] of cache) {
  const norm = Math.sqrt(data.reduce((s, v) => s + v * v, 0) / shape[1]!);
  console.log(`${name.padEnd(32)} shape [${shape.join(', ')}]  mean norm per position ${norm.toFixed(3)}`);
}
model.dispose();
await releaseGpu();
process.exit(0);
