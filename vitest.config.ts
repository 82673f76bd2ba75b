import { defineConfig } from 'vitest/config';

// Two projects: `host` runs anywhere (pure logic on recorded data);
// `kernel` runs inside the test rig's VM against a real kernel (vkms + vgpu-sim).
// test/run-all.mjs runs host here and kernel inside the VM, then sums both.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'host',
          include: ['test/host/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'kernel',
          include: ['test/kernel/**/*.test.ts'],
          environment: 'node',
          // one VM boot runs every kernel test file, one at a time: they share devices
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
