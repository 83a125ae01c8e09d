// llama.cpp as an oracle: reads a JSON request on stdin, answers JSON on stdout.
//   {"model": PATH, "tokenize": [{"text": "...", "special": true}, ...]}  ->  {"tokens": [[ids], ...]}
// A separate process, so llama.cpp's native code never shares a process with Dawn.
import { getLlama } from 'node-llama-cpp';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: req.model, gpuLayers: 0 });
const out = {};
if (req.tokenize) out.tokens = req.tokenize.map(({ text, special }) => Array.from(model.tokenize(text, special)));
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(out));
