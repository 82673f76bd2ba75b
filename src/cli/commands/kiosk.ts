import type { Command } from 'commander';

/** exit statuses of `vgpu-flip kiosk --check` */
export const KIOSK_EXIT = { valid: 0, invalid: 1, usage: 2, notImplemented: 3 } as const;

export interface KioskCheckOptions {
  check?: string;
  run?: string;
  logFormat?: string;
  schemaOnly?: boolean;
  json?: boolean;
}

export interface KioskIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/**
 * `vgpu-flip kiosk --check FILE [--schema-only] [--json]`: validate a kiosk configuration and
 * print its plan per output, or EVERY problem with file:line:column. The daemon (issue 9) is not
 * here yet; neither is checking the configuration against this machine's devices (exit 3).
 * Returns the exit status.
 */
export async function runKioskCheck(opts: KioskCheckOptions, io: KioskIo): Promise<number> {
  if (opts.run) return runKioskDaemon(opts.run, opts.logFormat, io);
  if (!opts.check) {
    io.stderr('vgpu-flip kiosk: say what to do: --check FILE (validate a configuration) or --run FILE (present it)\n');
    return KIOSK_EXIT.usage;
  }
  const { loadConfigFile, ConfigReadError } = await import('../../kiosk/load.js');
  const { formatProblem } = await import('../../kiosk/problems.js');
  const { planJson, renderPlanText } = await import('../../kiosk/plan.js');
  let result;
  try {
    result = loadConfigFile(opts.check);
  } catch (e) {
    if (!(e instanceof ConfigReadError)) throw e;
    io.stderr(`vgpu-flip kiosk: ${e.message}\n`);
    return KIOSK_EXIT.usage;
  }
  const deviceCheck = opts.schemaOnly ? 'skipped' : 'not-implemented';
  const notImplemented =
    'checking the configuration against this machine\'s DRM devices and vGPUs is not implemented yet; ' +
    'only the file itself was checked (use --schema-only to say that this is what you want)';
  const code = !result.ok ? KIOSK_EXIT.invalid : opts.schemaOnly ? KIOSK_EXIT.valid : KIOSK_EXIT.notImplemented;
  if (opts.json) {
    const out = {
      file: result.file,
      valid: result.ok,
      problems: result.problems.map((p) => ({ line: p.line, column: p.column, path: p.path, message: p.message, source: p.source })),
      plan: result.ok ? planJson(result.config) : null,
      deviceCheck,
      exitStatus: code,
    };
    io.stdout(JSON.stringify(out, null, 2) + '\n');
    if (!opts.schemaOnly) io.stderr(`vgpu-flip kiosk: ${notImplemented}\n`);
    return code;
  }
  if (!result.ok) {
    for (const p of result.problems) io.stderr(formatProblem(p) + '\n');
    const n = result.problems.length;
    io.stderr(`${result.file}: invalid: ${n} problem${n === 1 ? '' : 's'}\n`);
  } else {
    io.stdout(renderPlanText(result.config));
    io.stdout(`${result.file}: valid${opts.schemaOnly ? ' (schema and cross-field checks; no device checked)' : ''}\n`);
  }
  if (!opts.schemaOnly) io.stderr(`vgpu-flip kiosk: ${notImplemented}\n`);
  return code;
}

/**
 * `vgpu-flip kiosk --run FILE`: present the configuration until SIGTERM/SIGINT (display restored,
 * exit 0). SIGHUP reloads: an invalid file is logged problem by problem and the running
 * configuration stays; a valid one replaces it (every output is brought up again). Logs are
 * JSON lines on stderr (--log-format text for people).
 */
async function runKioskDaemon(file: string, logFormat: string | undefined, io: KioskIo): Promise<number> {
  const { loadConfigFile, ConfigReadError } = await import('../../kiosk/load.js');
  const { formatProblem } = await import('../../kiosk/problems.js');
  const { KioskDaemon } = await import('../../kiosk/daemon.js');
  const load = (): import('../../kiosk/load.js').LoadResult | null => {
    try {
      return loadConfigFile(file);
    } catch (e) {
      if (!(e instanceof ConfigReadError)) throw e;
      io.stderr(`vgpu-flip kiosk: ${e.message}\n`);
      return null;
    }
  };
  const first = load();
  if (!first) return KIOSK_EXIT.usage;
  if (!first.ok) {
    for (const p of first.problems) io.stderr(formatProblem(p) + '\n');
    return KIOSK_EXIT.invalid;
  }
  const format = logFormat ?? first.config.log.format;
  const log = (level: string, msg: string, fields: Record<string, unknown> = {}): void => {
    if (format === 'json') io.stderr(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
    else io.stderr(`${level}: ${msg}\n`);
  };
  let daemon = new KioskDaemon(first.config, log);
  try {
    const r = daemon.start();
    log('info', `ready: outputs ${r.outputs.join(', ') || '(none)'}; waiting for ${r.waiting.join(', ') || 'nothing'}; vms ${r.vms.join(', ') || '(none)'}`, { event: 'ready', ...r });
  } catch (e) {
    log('error', `cannot start: ${(e as Error).message}`);
    return KIOSK_EXIT.invalid;
  }
  return new Promise<number>((resolve) => {
    let busy = false;
    const stop = (sig: string): void => {
      log('info', `${sig}: restoring the displays and exiting`, { event: 'stopping' });
      void daemon.stop().then(() => {
        process.off('SIGHUP', reload);
        resolve(0);
      });
    };
    const reload = (): void => {
      if (busy) return;
      busy = true;
      const next = load();
      if (!next || !next.ok) {
        for (const p of next?.problems ?? []) log('error', `reload refused: ${formatProblem(p)}`, { event: 'reload-refused', line: p.line, column: p.column });
        log('warn', 'reload refused: the running configuration stays', { event: 'reload-refused' });
        busy = false;
        return;
      }
      log('info', 'reload: bringing the outputs up with the new configuration', { event: 'reload' });
      void daemon.stop().then(() => {
        daemon = new KioskDaemon(next.config, log);
        try {
          const r = daemon.start();
          log('info', `ready: outputs ${r.outputs.join(', ') || '(none)'}`, { event: 'ready', ...r });
        } catch (e) {
          log('error', `reload failed: ${(e as Error).message}`, { event: 'reload-failed' });
        }
        busy = false;
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', reload);
  });
}

export function registerKiosk(program: Command): void {
  program
    .command('kiosk')
    .description('kiosk mode: which VM planes go on which monitors: check a configuration, or run it')
    .option('--check <file>', 'validate this YAML configuration and print its plan per output')
    .option('--run <file>', 'present this configuration until SIGTERM (SIGHUP reloads it); logs on stderr')
    .option('--log-format <f>', 'json or text (default: the configuration\'s log.format)')
    .option('--schema-only', 'check only the file (schema and cross-field checks), no devices of this machine')
    .option('--json', 'JSON output for scripts: problems with line and column, the plan')
    .addHelpText(
      'after',
      '\nThe format is described by configs/vgpu-flip-kiosk.schema.json (generated from src/kiosk/schema.ts);\n' +
        'examples are in configs/. Exit status: 0 valid; 1 invalid configuration (every problem listed with\n' +
        'file:line:column); 2 usage error or unreadable file; 3 valid, but the check against this machine\'s\n' +
        'devices (without --schema-only) is not implemented yet.',
    )
    .exitOverride((err) => {
      // commander's own errors (unknown option, missing argument) are usage errors: exit 2
      process.exit(err.exitCode === 0 ? 0 : KIOSK_EXIT.usage);
    })
    .action(async (opts: KioskCheckOptions) => {
      process.exitCode = await runKioskCheck(opts, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
      });
    });
}
