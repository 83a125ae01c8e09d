// llama.cpp as an oracle: reads a JSON request on stdin, answers JSON on stdout.
//   {"model": PATH, "tokenize": [{"text": "...", "special": true}, ...]}  ->  {"tokens": [[ids], ...]}
//   {"model": PATH, "logprobs": [ids]}  ->  {"logprobs": [[log p(v | ids[0..i]) for every v] for each i]}
//     teacher-forced, temperature 1 and no other sampler, KV cache in F32, flash attention off
//     (llama.cpp gives probabilities, not logits; a probability of 0 comes back as null). The token it
//     samples is replaced by the next given one; `yieldEogToken` (an option node-llama-cpp accepts but
//     does not type) keeps a sampled end-of-generation token from ending the sequence early.
// A separate process, so llama.cpp's native code never shares a process with Dawn.
import { getLlama } from 'node-llama-cpp';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: req.model, gpuLayers: 0 });
const out = {};
if (req.tokenize) out.tokens = req.tokenize.map(({ text, special }) => Array.from(model.tokenize(text, special)));
if (req.logprobs) {
  const ids = req.logprobs;
  const context = await model.createContext({
    contextSize: Math.max(64, ids.length + 8), batchSize: 512, sequences: 1, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  const seq = context.getSequence();
  const it = seq.evaluateWithMetadata([ids[0]], { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1, yieldEogToken: true });
  out.logprobs = [];
  let r = await it.next();
  for (let i = 0; i < ids.length; i++) {
    const row = new Array(model.fileInfo.metadata.tokenizer.ggml.tokens.length).fill(null);
    for (const [t, p] of r.value.probabilities) row[t] = p > 0 ? Math.log(p) : null;
    out.logprobs.push(row);
    if (i + 1 < ids.length) r = await it.next(ids[i + 1]);
  }
  await it.return();
  await context.dispose();
}
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(out));
