/** Kernel tests share the machine's BPF and netns state: run them one file at a time. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  modulePathIgnorePatterns: ['<rootDir>/dist/', '<rootDir>/build/'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/dist/'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 120000,
  globalSetup: '<rootDir>/test/global-setup.ts',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
};
