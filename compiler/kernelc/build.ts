// Build step: translate every @kernel function under ops/ into kernel IR and write it to
// ops/kernels.gen.ts, which the runtime imports. Fails (exit 2) with file:line on unsupported syntax.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelSyntaxError } from './translate.js';
import { renderModule, translateOpsAll } from './ops.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
{
  try {
    const { kernels, fragments } = translateOpsAll(root);
    const text = renderModule(kernels, fragments);
    const out = path.join(root, 'ops', 'kernels.gen.ts');
    if (!fs.existsSync(out) || fs.readFileSync(out, 'utf8') !== text) fs.writeFileSync(out, text);
    console.error(`kernelc: ${kernels.length} kernels, ${fragments.length} epilogue fragments -> ops/kernels.gen.ts`);
  } catch (e) {
    if (e instanceof KernelSyntaxError) {
      console.error(`kernelc: error: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }
}
