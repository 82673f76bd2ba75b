// Counting vitest JSON reports for `npm test` (test/rig/counts.mjs).
import { describe, expect, it } from 'vitest';
import { countKernelSuite, countReport, total } from '../rig/counts.mjs';

const ROOT = '/work/x';

function report(files: Array<{ name: string; status: string; message?: string; tests: Array<[string, string, string?]> }>, success = true) {
  return {
    numTotalTests: files.reduce((n, f) => n + f.tests.length, 0),
    success,
    testResults: files.map((f) => ({
      name: `${ROOT}/${f.name}`,
      status: f.status,
      message: f.message ?? '',
      assertionResults: f.tests.map(([title, status, msg]) => ({
        fullName: title,
        title,
        status,
        failureMessages: msg ? [msg] : [],
      })),
    })),
  };
}

describe('countReport', () => {
  it('counts passed, failed and skipped tests', () => {
    const c = countReport(
      report(
        [
          { name: 'test/host/a.test.ts', status: 'passed', tests: [['a1', 'passed'], ['a2', 'skipped'], ['a3', 'todo']] },
          { name: 'test/host/b.test.ts', status: 'failed', tests: [['b1', 'passed'], ['b2', 'failed', 'AssertionError: expected 1\n at x']] },
        ],
        false,
      ),
      ROOT,
    );
    expect(c).toMatchObject({ passed: 2, failed: 1, skipped: 2, total: 5 });
    expect(c.failures).toEqual(['test/host/b.test.ts > b2: AssertionError: expected 1']);
    expect(c.skippedNames).toEqual(['test/host/a.test.ts > a2', 'test/host/a.test.ts > a3']);
  });

  it('counts a file that failed outside its tests (import error) as one failure', () => {
    const c = countReport(
      report([{ name: 'test/kernel/x.test.ts', status: 'failed', message: 'Failed to load ./addon\nstack', tests: [] }], false),
      ROOT,
    );
    expect(c.failed).toBe(1);
    expect(c.failures[0]).toContain('test/kernel/x.test.ts: the file failed outside its tests: Failed to load ./addon');
  });

  it('counts an unsuccessful run without failed tests (unhandled error) as one failure', () => {
    const c = countReport(report([{ name: 't.test.ts', status: 'passed', tests: [['t', 'passed']] }], false), ROOT);
    expect(c).toMatchObject({ passed: 1, failed: 1 });
  });

  it('treats something that is not a vitest report as a failure', () => {
    expect(countReport({ hello: 1 }).failed).toBe(1);
    expect(countReport(null).failed).toBe(1);
  });
});

describe('countKernelSuite', () => {
  const ok = { status: 0, dmesg: 'ok', reason: 'ok' };
  const good = report([{ name: 'test/kernel/rig.test.ts', status: 'passed', tests: [['r', 'passed']] }]);

  it('passes a suite that ran in a clean VM', () => {
    expect(countKernelSuite(good, ok, ROOT)).toMatchObject({ passed: 1, failed: 0 });
  });

  it('fails when there is no report (VM did not start, timed out, panicked)', () => {
    const c = countKernelSuite(undefined, { status: 124, reason: 'timeout' }, ROOT);
    expect(c.failed).toBe(1);
    expect(c.failures[0]).toContain('timed out');
    expect(countKernelSuite(undefined, undefined, ROOT).failed).toBe(1);
  });

  it('fails when no test was collected', () => {
    const c = countKernelSuite(report([]), ok, ROOT);
    expect(c.failed).toBeGreaterThanOrEqual(1);
    expect(c.failures.join()).toContain('collected no tests');
  });

  it('adds a failure when the kernel log check failed, even if tests failed too', () => {
    expect(countKernelSuite(good, { status: 3, dmesg: 'bad', reason: 'ok' }, ROOT)).toMatchObject({ passed: 1, failed: 1 });
    const bad = report([{ name: 'k.test.ts', status: 'failed', tests: [['k', 'failed', 'x']] }], false);
    expect(countKernelSuite(bad, { status: 1, dmesg: 'bad', reason: 'ok' }, ROOT).failed).toBe(2);
  });

  it('adds a failure when the VM failed although every test passed', () => {
    expect(countKernelSuite(good, { status: 125, reason: 'no-status' }, ROOT).failed).toBe(1);
  });

  it('does not double-count a VM exit caused by failing tests', () => {
    const bad = report([{ name: 'k.test.ts', status: 'failed', tests: [['k', 'failed', 'x']] }], false);
    expect(countKernelSuite(bad, { status: 1, dmesg: 'ok', reason: 'ok' }, ROOT).failed).toBe(1);
  });
});

describe('total', () => {
  const s = (passed: number, failed: number, skipped: number) => ({ passed, failed, skipped, total: 0, failures: [], skippedNames: [] });
  it('sums suites and counts skipped as failed only in CI', () => {
    expect(total([s(3, 1, 2), s(4, 0, 1)], false)).toEqual({ passed: 7, failed: 1, skipped: 3 });
    expect(total([s(3, 1, 2), s(4, 0, 1)], true)).toEqual({ passed: 7, failed: 4, skipped: 3 });
  });
});
