/**
 * Layering rules (`npm run deps`), from DESIGN.md's "Style to follow" and issue 20. Type-only imports count:
 * a layer that needs another's types depends on it.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'Modules form a tree of layers: no import cycle, type-only imports included.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'workers-not-to-http',
      severity: 'error',
      comment: 'Worker threads import the shared protocol and types, never the HTTP side.',
      from: { path: '^workers/' },
      to: { path: '^src/http/' },
    },
    {
      name: 'metrics-not-to-engine',
      severity: 'error',
      comment: 'Metrics take plain label records; engines report into them, not the other way round.',
      from: { path: '^src/metrics/' },
      to: { path: '^src/engine/' },
    },
    {
      name: 'dialects-independent',
      severity: 'error',
      comment: 'Each API dialect (OpenAI, Responses, Anthropic) has its folder over the shared HTTP core and imports no other dialect.',
      from: { path: '^src/http/(openai|responses|anthropic)/' },
      to: { path: '^src/http/(openai|responses|anthropic)/', pathNot: '^src/http/$1/' },
    },
    {
      name: 'http-core-not-to-dialects',
      severity: 'error',
      comment: 'The shared HTTP core and middleware serve every dialect: they import none (app.ts composes them).',
      from: { path: '^src/http/(core|middleware)/' },
      to: { path: '^src/http/(openai|responses|anthropic|native)/' },
    },
    {
      name: 'prom-client-only-in-metrics',
      severity: 'error',
      comment: 'Only src/metrics imports prom-client: instrumentation stays out of the other layers.',
      from: { path: '^(src|workers)/', pathNot: '^src/metrics/' },
      to: { path: '^node_modules/prom-client/' },
    },
    {
      name: 'no-dev-deps-at-runtime',
      severity: 'error',
      comment:
        'The installed package has no devDependencies: what src and workers load at run time must be a dependency. ' +
        'Only a dynamic import() may name one, for an optional feature that handles its absence (the bench chart: src/tools/bench/report.ts).',
      from: { path: '^(src|workers)/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only', 'dynamic-import'] },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve is a typo or a missing dependency.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Packages are leaves: their own imports are not followed (the prom-client rule still sees the import of it).
    doNotFollow: { path: '^node_modules/' },
    // The dashboard's browser modules are static files served to the page, not part of the server's graph.
    exclude: { path: '^src/dashboard/public/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
