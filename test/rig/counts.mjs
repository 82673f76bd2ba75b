// Counting test results from vitest's JSON reporter (jest-compatible format), for
// test/run-all.mjs. Pure functions: unit-tested in test/host/rig-counts.test.ts.

/**
 * @typedef {{ passed: number, failed: number, skipped: number, total: number,
 *             failures: string[], skippedNames: string[] }} Counts
 */

const SKIPPED = new Set(['skipped', 'pending', 'todo', 'disabled']);

/**
 * Count one vitest JSON report. A test file that failed without a failing test in it (an
 * import error, a failing beforeAll, a crash) counts as one failed test, and so does a run
 * vitest marked unsuccessful for reasons outside any test (unhandled errors).
 * @param {any} report parsed JSON
 * @param {string} [root] path prefix to strip from file names
 * @returns {Counts}
 */
export function countReport(report, root = '') {
  /** @type {Counts} */
  const c = { passed: 0, failed: 0, skipped: 0, total: 0, failures: [], skippedNames: [] };
  if (!report || typeof report !== 'object' || !Array.isArray(report.testResults)) {
    c.failed = 1;
    c.failures.push('the JSON report is not a vitest report (no testResults)');
    return c;
  }
  const rel = (/** @type {string} */ f) => (root && f.startsWith(root + '/') ? f.slice(root.length + 1) : f);
  for (const file of report.testResults) {
    const name = rel(String(file?.name ?? '?'));
    let fileFailed = 0;
    for (const a of Array.isArray(file?.assertionResults) ? file.assertionResults : []) {
      const title = `${name} > ${a.fullName ?? a.title ?? '?'}`;
      c.total++;
      if (a.status === 'passed') c.passed++;
      else if (SKIPPED.has(a.status)) {
        c.skipped++;
        c.skippedNames.push(title);
      } else {
        c.failed++;
        fileFailed++;
        const msg = Array.isArray(a.failureMessages) && a.failureMessages.length ? firstLine(a.failureMessages[0]) : a.status;
        c.failures.push(`${title}: ${msg}`);
      }
    }
    if (file?.status === 'failed' && fileFailed === 0) {
      c.failed++;
      c.failures.push(`${name}: the file failed outside its tests: ${firstLine(file.message || 'no message')}`);
    }
  }
  if (report.success === false && c.failed === 0) {
    c.failed++;
    c.failures.push('vitest reported the run as unsuccessful (unhandled errors?) although no test failed');
  }
  return c;
}

/** @param {string} s */
function firstLine(s) {
  const line = String(s).split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/**
 * The kernel suite: a suite that could not run, or that ran no test, counts as failed.
 * @param {any | undefined} report parsed JSON, or undefined when there was none
 * @param {{ status: number, dmesg?: string, reason?: string } | undefined} vm vm.sh's result
 * @param {string} [root]
 * @returns {Counts}
 */
export function countKernelSuite(report, vm, root = '') {
  /** @type {Counts} */
  let c;
  if (report === undefined) {
    c = { passed: 0, failed: 1, skipped: 0, total: 0, failures: [], skippedNames: [] };
    c.failures.push(`kernel suite did not run: no JSON report (${describeVm(vm)})`);
    return c;
  }
  c = countReport(report, root);
  if (c.total === 0 && c.failed === 0) {
    c.failed = 1;
    c.failures.push('kernel suite collected no tests');
  }
  if (vm && vm.dmesg === 'bad') {
    c.failed++;
    c.failures.push('kernel log check failed after the suite (WARNING/BUG/Oops/... or modules did not unload)');
  } else if (!vm || (vm.status !== 0 && c.failed === 0)) {
    c.failed++;
    c.failures.push(`the VM run failed although no test did (${describeVm(vm)})`);
  }
  return c;
}

/** @param {{ status: number, dmesg?: string, reason?: string } | undefined} vm */
function describeVm(vm) {
  if (!vm) return 'the VM reported nothing';
  if (vm.status === 124) return 'the VM timed out';
  if (vm.reason === 'no-status') return 'the guest died: kernel panic or crash';
  if (vm.reason === 'setup-failed') return 'the guest could not load its modules or create mdevs';
  return `vm.sh exit status ${vm.status}`;
}

/**
 * Sum suites; in CI, skipped tests count as failed.
 * @param {Counts[]} suites
 * @param {boolean} ci
 */
export function total(suites, ci) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const s of suites) {
    passed += s.passed;
    failed += s.failed;
    skipped += s.skipped;
  }
  return { passed, failed: failed + (ci ? skipped : 0), skipped };
}
