// Types for test/rig/counts.mjs (plain ESM JavaScript used by test/run-all.mjs).
export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  total: number;
  failures: string[];
  skippedNames: string[];
}
export interface VmResult {
  status: number;
  commandStatus?: number | null;
  dmesg?: string;
  reason?: string;
  jobDir?: string;
  seconds?: number;
}
export function countReport(report: unknown, root?: string): Counts;
export function countKernelSuite(report: unknown, vm: VmResult | undefined, root?: string): Counts;
export function total(suites: Counts[], ci: boolean): { passed: number; failed: number; skipped: number };
