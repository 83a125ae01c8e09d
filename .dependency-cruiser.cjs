// The shape of the code, checked by dependency-cruiser (test/architecture.test.ts runs it):
// no import cycles, type-only imports included (a loop of types is a loop of design), and the
// compiler knows nothing of the ops, models, runtime, command line or viewer built on it.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'modules form a tree of layers: a cycle (of values or of types) means two modules are one design',
      from: {},
      to: { circular: true },
    },
    {
      name: 'compiler-stands-alone',
      severity: 'error',
      comment: 'compiler/ is the IR, the passes and the kernel language: ops, models and the runtime build on it, never the other way',
      from: { path: '^compiler/' },
      to: { path: '^(api|ops|models|runtime|cli|viewer|benchmarks|examples)/' },
    },
    {
      name: 'no-missing-modules',
      severity: 'error',
      comment: 'an import that resolves to nothing is a typo or a deleted file (a types package named by a triple-slash reference has no module to resolve)',
      from: {},
      to: { couldNotResolve: true, pathNot: '^@webgpu/types$' },
    },
  ],
  options: {
    // type-only imports count
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
