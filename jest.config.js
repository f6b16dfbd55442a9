// Native ESM mode: run through `npm run jest` (node --experimental-vm-modules).
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup-env.ts'],
  // Integration tests start real OVS daemons and namespaces; two cores, two workers.
  maxWorkers: 2,
  testTimeout: 60_000,
  verbose: false,
};
