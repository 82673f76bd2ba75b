#!/usr/bin/env node
// `npm test`: build, host unit tests, then the kernel suite in ONE VM of the test rig; the last
// line is exactly "N passed, N failed" and the exit status is non-zero when anything failed.
//
//   1. npm run build (tsc)                       a failed build counts as 1 failed
//   2. vitest --project host                     JSON report: .vm-out/host.json
//   3. test/rig/vm.sh --check-dmesg --sample-drivers --display2 -- vitest --project kernel
//                                                JSON report: .vm-out/kernel.json
// A kernel suite that cannot start (VM failure, no report, no test collected, kernel log check
// failed) counts as failed, never as skipped. With CI=true, skipped tests count as failed.
// Environment: VGPU_FLIP_KERNEL_TIMEOUT (seconds for the VM run, default 2700),
// VGPU_FLIP_SKIP_KERNEL=1 (host only; counted as 1 failed so it never passes silently).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { countKernelSuite, countReport, total } from './rig/counts.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, '.vm-out');
const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const say = (/** @type {string} */ s) => console.log(`[test] ${s}`);

/** run a command with inherited stdio; resolves to its exit status */
function run(/** @type {string} */ cmd, /** @type {string[]} */ args, /** @type {NodeJS.ProcessEnv} */ env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env });
    child.on('error', (e) => {
      say(`cannot run ${cmd}: ${e.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** @returns {any | undefined} */
function readJson(/** @type {string} */ f) {
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    say(`unreadable JSON ${path.relative(root, f)}: ${/** @type {Error} */ (e).message}`);
    return undefined;
  }
}

const fmt = (/** @type {import('./rig/counts.mjs').Counts} */ c) => `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`;

async function main() {
  mkdirSync(out, { recursive: true });
  const t0 = Date.now();
  const suites = [];
  /** @type {string[]} */
  const failures = [];
  /** @type {string[]} */
  const skipped = [];

  // 1. build
  say('npm run build');
  const buildRc = await run('npm', ['run', 'build']);
  if (buildRc !== 0) {
    suites.push({ passed: 0, failed: 1, skipped: 0, total: 1, failures: [], skippedNames: [] });
    failures.push(`build: npm run build exited ${buildRc}`);
  }

  // 2. host
  const hostJson = path.join(out, 'host.json');
  rmSync(hostJson, { force: true });
  say('host tests: vitest run --project host');
  const hostRc = await run('npx', ['vitest', 'run', '--project', 'host', '--reporter=default', '--reporter=json', `--outputFile.json=${hostJson}`]);
  const hostReport = readJson(hostJson);
  /** @type {import('./rig/counts.mjs').Counts} */
  let host;
  if (hostReport === undefined) {
    host = { passed: 0, failed: 1, skipped: 0, total: 0, failures: [`host suite did not run (vitest exit ${hostRc}, no JSON report)`], skippedNames: [] };
  } else {
    host = countReport(hostReport, root);
    if (hostRc !== 0 && host.failed === 0) {
      host.failed = 1;
      host.failures.push(`host vitest exited ${hostRc} although no test failed`);
    }
  }
  suites.push(host);
  failures.push(...host.failures.map((f) => `host: ${f}`));
  skipped.push(...host.skippedNames.map((f) => `host: ${f}`));
  const tHost = Date.now();

  // 3. kernel, in one VM
  /** @type {import('./rig/counts.mjs').Counts} */
  let kernel;
  if (process.env['VGPU_FLIP_SKIP_KERNEL'] === '1') {
    say('VGPU_FLIP_SKIP_KERNEL=1: the kernel suite is not run (counted as 1 failed)');
    kernel = { passed: 0, failed: 1, skipped: 0, total: 0, failures: ['kernel suite not run (VGPU_FLIP_SKIP_KERNEL=1)'], skippedNames: [] };
  } else {
    const kernelJson = path.join(out, 'kernel.json');
    const vmResult = path.join(out, 'kernel-vm.json');
    rmSync(kernelJson, { force: true });
    rmSync(vmResult, { force: true });
    const timeout = process.env['VGPU_FLIP_KERNEL_TIMEOUT'] ?? '2700';
    say(`kernel tests in the VM: vm.sh --check-dmesg --sample-drivers --display2 -- vitest run --project kernel (timeout ${timeout}s)`);
    // vitest from node_modules/.bin (first on the guest's PATH): npx costs ~20 s over 9p under TCG
    await run(
      'bash',
      [
        path.join(root, 'test/rig/vm.sh'),
        '--check-dmesg',
        '--sample-drivers', // mbochs + mdpy for test/kernel/sample-drivers.test.ts
        '--display2', // virtio-gpu (2 heads) + screendump for test/kernel/display2.test.ts
        '--timeout',
        timeout,
        '--',
        'vitest',
        'run',
        '--project',
        'kernel',
        '--reporter=default',
        '--reporter=json',
        `--outputFile.json=${kernelJson}`,
      ],
      { ...process.env, VGPU_FLIP_VM_RESULT: vmResult },
    );
    kernel = countKernelSuite(readJson(kernelJson), readJson(vmResult), root);
  }
  suites.push(kernel);
  failures.push(...kernel.failures.map((f) => `kernel: ${f}`));
  skipped.push(...kernel.skippedNames.map((f) => `kernel: ${f}`));
  const tEnd = Date.now();

  // summary
  console.log('');
  say(`host:   ${fmt(host)} (${((tHost - t0) / 1000).toFixed(0)} s with the build)`);
  say(`kernel: ${fmt(kernel)} (${((tEnd - tHost) / 1000).toFixed(0)} s with the VM)`);
  if (failures.length) {
    say('failed:');
    for (const f of failures.slice(0, 60)) say(`  ${f}`);
    if (failures.length > 60) say(`  ... and ${failures.length - 60} more`);
  }
  const sum = total(suites, ci);
  if (sum.skipped > 0) {
    for (const s of skipped.slice(0, 30)) say(`  skipped: ${s}`);
    say(ci ? `CI=true: ${sum.skipped} skipped test(s) count as failed` : `${sum.skipped} test(s) skipped (they count as failed in CI)`);
  }
  console.log(`${sum.passed} passed, ${sum.failed} failed`);
  process.exitCode = sum.failed > 0 ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
