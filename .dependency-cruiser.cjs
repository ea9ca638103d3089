/**
 * Module boundaries (npm run deps:check).
 * - A module never imports another module's repositories or entities: it calls that module's
 *   service (DESIGN.md "Layout").
 * - Vendor SDKs live only in the provider folders src/pbx/ and src/crm/.
 * - Production code does not import tests, dev dependencies or unresolvable paths; no cycles.
 */
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
      name: 'vendor-sdks-only-in-providers',
      severity: 'error',
      comment: 'Vendor SDKs are used only by the drivers under src/pbx/ and src/crm/.',
      from: { path: '^src/', pathNot: '^src/(pbx|crm)/' },
      to: { path: `node_modules/(${VENDOR_SDKS.join('|')})` },
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
