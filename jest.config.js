/**
 * Jest in ESM mode (NestJS 12 is ESM-only) with @swc/jest: legacy decorators and decorator
 * metadata, as `tsc` emits them. Two projects: `unit` (specs beside the code) and `e2e` (the real
 * application over HTTP against a real PostgreSQL, in `test/`).
 */
const swc = {
  jsc: {
    target: 'es2022',
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    keepClassNames: true,
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

/**
 * Dependencies that CommonJS packages `require` are pinned to CommonJS versions that support Node 20
 * (package.json `overrides`: content-disposition 2 for @fastify/static, cookie 1 for
 * light-my-request), so Jest needs no transform for node_modules.
 */
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  testEnvironment: 'node',
};

export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
  reporters: ['default', '<rootDir>/test/support/summary-reporter.cjs'],
  testTimeout: 30_000,
};
