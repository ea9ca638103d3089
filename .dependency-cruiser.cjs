/**
 * Module boundaries (npm run deps:check).
 * - A module never imports another module's repositories or entities: it calls that module's
 *   service (DESIGN.md "Layout").
 * - Vendor SDKs live only in the provider folders src/pbx/ and src/crm/.
 * - Production code does not import tests, dev dependencies or unresolvable paths; no cycles.
 * - Errors come from one catalogue per module (`src/<module>/<module>.errors.ts`, built with
 *   `defineErrors`): only catalogues and src/common/errors construct an AppException, so a code has
 *   exactly one status.
 * - Services know nothing of Fastify: no reply (or request) inside a service.
 */
/** Catalogues (`*.errors.ts`) and the errors folder itself: the only places that build errors. */
const ERROR_CATALOGUES = ['^src/common/errors/', '\\.errors\\.ts$'];

const VENDOR_SDKS = ['asterisk-ami-client', 'twilio', '@elevenlabs', 'suitecrm', 'jsforce', 'dialpad'];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Circular imports hide module boundaries and break ESM initialisation order.',
      from: { path: '^src/' },
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-foreign-repositories-or-entities',
      severity: 'error',
      comment: "Call the owning module's service instead of its repositories or entities.",
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/([^/]+)/.+\\.(repository|entity)\\.ts$', pathNot: '^src/$1/' },
    },
    {
      name: 'pbx-behind-its-port',
      severity: 'error',
      comment:
        'Vendors keep only verification and mapping (src/pbx/<vendor>/); the inbox, its processing and outbound webhooks live in src/webhooks/, which calls the PBX port, never the other way.',
      from: { path: '^src/pbx/' },
      to: { path: '^src/webhooks/' },
    },
    {
      name: 'vendor-sdks-only-in-providers',
      severity: 'error',
      comment: 'Vendor SDKs are used only by the drivers under src/pbx/ and src/crm/.',
      from: { path: '^src/', pathNot: '^src/(pbx|crm)/' },
      to: { path: `node_modules/(${VENDOR_SDKS.join('|')})` },
    },
    {
      name: 'app-exception-only-in-catalogues',
      severity: 'error',
      comment:
        "Throw through your module's catalogue (src/<module>/<module>.errors.ts, defineErrors) instead of " +
        'constructing an AppException; use isAppException / type AppException from common.errors.ts.',
      from: { path: '^src/', pathNot: ERROR_CATALOGUES },
      to: { path: '^src/common/errors/(app-exception|catalogue)\\.ts$' },
    },
    {
      name: 'no-app-exception-via-problem',
      severity: 'error',
      comment:
        'problem.ts is the wire format only: errors come from a catalogue and common.errors.ts ' +
        '(types may be imported).',
      from: {
        path: '^src/',
        pathNot: [...ERROR_CATALOGUES, '^src/common/swagger/', '^src/app\\.factory\\.ts$'],
      },
      to: { path: '^src/common/errors/problem\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-fastify-in-services',
      severity: 'error',
      comment:
        'A service takes plain values and throws catalogue errors; the controller (or a hook) owns the ' +
        'Fastify request and reply. Rate-limit headers: enforce(result, what) puts them in the request context.',
      from: { path: '\\.service\\.ts$' },
      to: { path: 'node_modules/(fastify|@nestjs/platform-fastify)/' },
    },
    {
      name: 'no-tests-in-production-code',
      severity: 'error',
      from: { path: '^(src|migrations)/', pathNot: '\\.spec\\.ts$' },
      to: { path: '^test/' },
    },
    {
      name: 'no-dev-dependencies-in-production-code',
      severity: 'error',
      from: { path: '^(src|migrations)/', pathNot: '\\.spec\\.ts$' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
  },
};
