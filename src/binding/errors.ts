// Helpers for the errors the native addon throws: every failing syscall throws an Error
// carrying op / path / errno / code (KernelErrorFields).
import type { KernelErrorFields } from './types.js';

export type KernelError = Error & KernelErrorFields;

/** True for errors thrown by the addon for a failed syscall or ioctl. */
export function isKernelError(e: unknown): e is KernelError {
  if (!(e instanceof Error)) return false;
  const r = e as Partial<KernelErrorFields>;
  return (
    typeof r.op === 'string' &&
    typeof r.path === 'string' &&
    typeof r.errno === 'number' &&
    typeof r.code === 'string'
  );
}

/** True when e is a kernel error with one of the given errno names ('EBUSY', 'EINVAL', ...). */
export function hasCode(e: unknown, ...codes: string[]): e is KernelError {
  return isKernelError(e) && codes.includes(e.code);
}

/**
 * One line for logs and CLI output. Kernel errors already read like
 * "DRM_IOCTL_MODE_ATOMIC on /dev/dri/card0: EINVAL (Invalid argument)"; `context` (what the
 * caller was doing) is prefixed. Other errors give their message; non-errors are stringified.
 */
export function describeKernelError(e: unknown, context?: string): string {
  let text: string;
  if (e instanceof Error) text = e.message;
  else text = String(e);
  return context ? `${context}: ${text}` : text;
}

/** The fields of a kernel error as a plain object (for JSON output), or null. */
export function kernelErrorFields(e: unknown): KernelErrorFields | null {
  if (!isKernelError(e)) return null;
  return { op: e.op, path: e.path, errno: e.errno, code: e.code };
}
