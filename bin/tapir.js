#!/usr/bin/env -S node --no-concurrent-recompilation
// The tapir command. dawn.node can crash when V8 recompiles on another thread, so the flag above
// turns that off (NODE_OPTIONS refuses it); setFlagsFromString covers `node bin/tapir.js`.
import v8 from 'node:v8';
import fs from 'node:fs';

v8.setFlagsFromString('--no-concurrent-recompilation');
// a reader that stops early (`tapir graph | head`) is not an error
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!fs.existsSync(entry)) {
  process.stderr.write("tapir: error: tapir is not built; run 'bash scripts/setup.sh' (or 'npm run build')\n");
  process.exit(2);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
// The GPU device is destroyed by now. Leave explicitly: at a natural exit Node runs the native
// finalizers of every Dawn object in no particular order, which can crash dawn.node (seen as a
// segfault after the work was done). Output is written synchronously on Linux, so nothing is lost.
process.exit(code);
