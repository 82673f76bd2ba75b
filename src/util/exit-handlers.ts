// Restore-then-exit on signals and fatal errors, for CLI commands that hold the display.
/**
 * Restore the display on SIGINT / SIGTERM / SIGHUP (the terminal went away) / SIGQUIT /
 * uncaught errors, then exit (128 + the signal number). Returns a function that removes the handlers.
 */
export function installExitHandlers(close: () => Promise<void>, log: (s: string) => void): () => void {
  let exiting = false;
  const exitWith = (code: number, why: string): void => {
    if (exiting) return;
    exiting = true;
    log(why);
    close()
      .catch((e) => log(`vgpu-flip: cleanup failed: ${(e as Error).message}`))
      .finally(() => process.exit(code));
  };
  const signals: [NodeJS.Signals, number, string][] = [
    ['SIGINT', 130, 'interrupted'],
    ['SIGTERM', 143, 'terminated'],
    ['SIGHUP', 129, 'hangup (SIGHUP)'],
    ['SIGQUIT', 131, 'quit (SIGQUIT)'],
  ];
  const handlers = signals.map(([sig, code, what]) => [sig, () => exitWith(code, `${what}: restoring the display`)] as const);
  const onFatal = (e: unknown): void => exitWith(1, `vgpu-flip: fatal error: ${(e as Error)?.stack ?? e}; restoring the display`);
  for (const [sig, h] of handlers) process.on(sig, h);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
    process.off('uncaughtException', onFatal);
    process.off('unhandledRejection', onFatal);
  };
}
