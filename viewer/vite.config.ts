// The viewer page's build: viewer/client bundled (with the runtime it runs for ?client=1) into
// dist/page, flat, with fixed names, so the server can serve exactly these files and nothing else.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('./client', import.meta.url)),
  base: './',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/page', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    assetsDir: '',
    modulePreload: false,
    chunkSizeWarningLimit: 2000, // the runtime (kernel IR included) for ?client=1, loaded only then
    rollupOptions: {
      // Node's WebGPU (runtime/gpu.ts imports it only where navigator.gpu is missing)
      external: ['webgpu'],
      // zod's sources carry pure-annotations Rollup cannot place; it drops them, harmlessly
      onwarn(w, warn) { if (w.code === 'INVALID_ANNOTATION' && w.id?.includes('node_modules/zod')) return; warn(w); },
      output: { entryFileNames: 'app.js', chunkFileNames: '[name].js', assetFileNames: '[name][extname]' },
    },
  },
});
