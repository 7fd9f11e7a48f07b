// The layering as a rule (`make lint-deps`, run by `make test`): the admin side (provision/) and
// the Pi's program (runtime/) meet only in contract/ (what both agree on) and lib/ (code both
// use); contract/ imports nothing of theirs; pure planning modules do no I/O; no cycles; no test
// code in production. Type-only imports count: a type is a dependency on the module that defines it.

/**
 * The pure planning modules, by role (server, runtime, aws, image): each role's plan.ts, and its
 * renderers and documents (render.ts, policies.ts, lifecycle.ts), and a database engine's SQL as
 * data (server/engines/*-sql.ts). Facts and steps, which run through an executor, live beside
 * them in facts.ts / steps.ts; a new file with one of these names is held to the rule.
 */
const PURE_PLAN = '^provision/(server|runtime|aws|image)/(plan|render|policies|lifecycle)\\.ts$|^provision/server/engines/[a-z-]+-sql\\.ts$';

/** Admin-side modules that drive the runtime's code in process, each with why. */
const ADMIN_INTO_RUNTIME_EXCEPTIONS = [
  // the demo plays the owner restoring on the admin machine, the way `pullvault restore` runs there
  'provision/demo/flow.ts',
];

const escape = (f) => f.replace(/[.]/g, '\\.');
const oneOf = (files) => `^(${files.map(escape).join('|')})$`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'admin-into-runtime',
      comment: 'provision/ reaches the runtime only through contract/ and lib/',
      severity: 'error',
      from: { path: '^provision/', pathNot: oneOf(ADMIN_INTO_RUNTIME_EXCEPTIONS) },
      to: { path: '^runtime/' },
    },
    {
      name: 'runtime-into-admin',
      comment: 'the Pi bundle carries no admin code: runtime/ reaches provision/ only through contract/ and lib/',
      severity: 'error',
      from: { path: '^runtime/' },
      to: { path: '^provision/' },
    },
    {
      name: 'contract-imports-nothing-of-theirs',
      comment: 'contract/ is the floor: node built-ins and npm libraries only',
      severity: 'error',
      from: { path: '^contract/' },
      to: { path: '^(provision|runtime|lib|test|bench|templates)/' },
    },
    {
      name: 'lib-imports-no-side',
      comment: 'lib/ is shared by both sides, so it imports neither (contract/ is fine)',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(provision|runtime|test|bench)/' },
    },
    {
      name: 'pure-plan-no-executor',
      comment: 'pure planning modules use no executor (provision/exec/, but quote.ts, which only quotes strings)',
      severity: 'error',
      from: { path: PURE_PLAN },
      to: { path: '^provision/exec/(?!quote\\.ts$)' },
    },
    {
      name: 'pure-plan-no-core',
      comment: 'pure planning modules import no node built-in (fs, child_process, …)',
      severity: 'error',
      from: { path: PURE_PLAN },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'no-test-code-in-production',
      comment: 'production code never imports tests or their fixtures',
      severity: 'error',
      from: { path: '^(provision|runtime|contract|lib)/' },
      to: { path: ['^test/', '\\.test\\.ts$'] },
    },
    {
      name: 'bundle-no-dev-dependencies',
      comment: 'what the Pi bundle contains (runtime/, contract/, lib/) uses only runtime dependencies',
      severity: 'error',
      from: { path: '^(runtime|contract|lib)/' },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'no-circular',
      comment: 'import cycles make layering meaningless and load order fragile',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that does not resolve is a typo or a missing dependency',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|state|\\.venv)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], mainFields: ['module', 'main', 'types', 'typings'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
