import type { Command } from 'commander';

/** exit statuses of `vgpu-flip kiosk --check` */
export const KIOSK_EXIT = { valid: 0, invalid: 1, usage: 2, machine: 3 } as const;

export interface KioskCheckOptions {
  check?: string;
  run?: string;
  logFormat?: string;
  controlSocket?: string;
  schemaOnly?: boolean;
  json?: boolean;
}

export interface KioskIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/**
 * `vgpu-flip kiosk --check FILE [--schema-only] [--json]`: validate a kiosk configuration and
 * print its plan per output, or EVERY problem with file:line:column; without --schema-only also
 * against this machine (src/kiosk/machine-check.ts: devices, connectors, CRTCs, modes, vGPUs,
 * TEST_ONLY of the planes), never touching the screen (exit 3 when the machine does not fit).
 * Returns the exit status.
 */
export async function runKioskCheck(opts: KioskCheckOptions, io: KioskIo): Promise<number> {
  if (opts.run) return runKioskDaemon(opts.run, opts, io);
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
  const { checkMachine, renderMachineCheck } = await import('../../kiosk/machine-check.js');
  const machine = result.ok && !opts.schemaOnly ? checkMachine(result.config) : null;
  if (machine && result.config!.outputs.some((o) => o.lease)) await (await import('../../kiosk/lease-check.js')).checkLeases(result.config!, machine);
  const deviceCheck = opts.schemaOnly ? 'skipped' : !result.ok ? 'not-run' : machine!.ok ? 'passed' : 'failed';
  const code = !result.ok ? KIOSK_EXIT.invalid : machine && !machine.ok ? KIOSK_EXIT.machine : KIOSK_EXIT.valid;
  if (opts.json) {
    const out = {
      file: result.file,
      valid: result.ok,
      problems: result.problems.map((p) => ({ line: p.line, column: p.column, path: p.path, message: p.message, source: p.source })),
      plan: result.ok ? planJson(result.config) : null,
      deviceCheck,
      machine,
      exitStatus: code,
    };
    io.stdout(JSON.stringify(out, null, 2) + '\n');
    return code;
  }
  if (!result.ok) {
    for (const p of result.problems) io.stderr(formatProblem(p) + '\n');
    const n = result.problems.length;
    io.stderr(`${result.file}: invalid: ${n} problem${n === 1 ? '' : 's'}\n`);
    return code;
  }
  io.stdout(renderPlanText(result.config));
  if (machine) io.stdout(renderMachineCheck(machine));
  const problems = machine?.findings.filter((f) => f.severity === 'problem').length ?? 0;
  io.stdout(
    `${result.file}: valid${opts.schemaOnly ? ' (schema and cross-field checks; no device checked)' : problems ? `, but this machine does not fit it: ${problems} problem${problems === 1 ? '' : 's'}` : ' and this machine fits it'}\n`,
  );
  return code;
}

/**
 * `vgpu-flip kiosk --run FILE`: present the configuration until SIGTERM/SIGINT (display restored,
 * exit 0). SIGHUP, or `vgpu-flip reload` on the control socket, reloads: an invalid file is logged
 * problem by problem and the running configuration stays; a valid one replaces it (every output
 * is brought up again). The control socket (src/kiosk/service.ts) answers status, screenshot and
 * reload; systemd is notified (READY, STATUS, WATCHDOG, STOPPING) when $NOTIFY_SOCKET is set.
 * Logs are pino JSON lines on stderr (--log-format pretty for people).
 */
async function runKioskDaemon(file: string, opts: KioskCheckOptions, io: KioskIo): Promise<number> {
  const { loadConfigFile, ConfigReadError } = await import('../../kiosk/load.js');
  const { formatProblem } = await import('../../kiosk/problems.js');
  const { KioskDaemon } = await import('../../kiosk/daemon.js');
  const { createLogger, parseLogFormat } = await import('../../kiosk/logger.js');
  const { KioskService } = await import('../../kiosk/service.js');
  const load = (): import('../../kiosk/load.js').LoadResult | string => {
    try {
      return loadConfigFile(file);
    } catch (e) {
      if (!(e instanceof ConfigReadError)) throw e;
      return e.message;
    }
  };
  const first = load();
  if (typeof first === 'string') {
    io.stderr(`vgpu-flip kiosk: ${first}\n`);
    return KIOSK_EXIT.usage;
  }
  if (!first.ok) {
    for (const p of first.problems) io.stderr(formatProblem(p) + '\n');
    return KIOSK_EXIT.invalid;
  }
  let format;
  try {
    format = parseLogFormat(opts.logFormat ?? (first.config.log.format === 'json' ? 'json' : 'pretty'));
  } catch (e) {
    io.stderr(`vgpu-flip kiosk: ${(e as Error).message}\n`);
    return KIOSK_EXIT.usage;
  }
  const { log, setLevel } = createLogger(format, first.config.log.level, io.stderr);
  let daemon = new KioskDaemon(first.config, log);
  try {
    const r = daemon.start();
    log('info', `ready: outputs ${r.outputs.join(', ') || '(none)'}; waiting for ${r.waiting.join(', ') || 'nothing'}; vms ${r.vms.join(', ') || '(none)'}`, { event: 'ready', ...r });
  } catch (e) {
    log('error', `cannot start: ${(e as Error).message}`);
    return KIOSK_EXIT.invalid;
  }
  let busy = false;
  const reload = async (): Promise<import('../../kiosk/service.js').ReloadVerdict> => {
    if (busy) return { applied: false, message: 'a reload is already under way', problems: [] };
    busy = true;
    try {
      const next = load();
      if (typeof next === 'string' || !next.ok) {
        const problems = typeof next === 'string' ? [] : next.problems;
        if (typeof next === 'string') log('error', `reload refused: ${next}`, { event: 'reload-refused' });
        for (const p of problems) log('error', `reload refused: ${formatProblem(p)}`, { event: 'reload-refused', line: p.line, column: p.column });
        log('warn', 'reload refused: the running configuration stays', { event: 'reload-refused' });
        return {
          applied: false,
          message: typeof next === 'string' ? `reload refused: ${next}; the running configuration stays` : `reload refused: ${file} has ${problems.length} problem${problems.length === 1 ? '' : 's'}; the running configuration stays`,
          problems: problems.map((p) => ({ line: p.line || null, column: p.column || null, path: p.path.join('.'), message: p.message, text: formatProblem(p) })),
        };
      }
      setLevel(next.config.log.level);
      try {
        // applied as a diff: what did not change keeps presenting without a missed frame
        const r = await daemon.apply(next.config);
        log('info', `reload: ${r.summary}; kept as they were: ${r.kept.join(', ') || '(none)'}`, { event: 'reload', ...r });
        log('info', `ready: outputs ${r.outputs.join(', ') || '(none)'}`, { event: 'ready', outputs: r.outputs, waiting: r.waiting, vms: r.vms });
        return { applied: true, message: `reloaded ${file} (${r.summary}): outputs ${r.outputs.join(', ') || '(none)'}, unchanged ${r.kept.join(', ') || '(none)'}; waiting for ${r.waiting.join(', ') || 'nothing'}`, problems: [] };
      } catch (e) {
        log('error', `reload failed: ${(e as Error).message}`, { event: 'reload-failed' });
        return { applied: false, message: `reload failed: ${(e as Error).message}`, problems: [] };
      }
    } finally {
      busy = false;
    }
  };
  const service = new KioskService({ daemon: () => daemon, reload, log, socket: opts.controlSocket ?? first.config.control.socket });
  try {
    await service.start();
  } catch (e) {
    log('error', `cannot start: ${(e as Error).message}`, { event: 'control-failed' });
    await service.stop();
    await daemon.stop();
    return KIOSK_EXIT.invalid;
  }
  return new Promise<number>((resolve) => {
    const onHup = (): void => void service.reload();
    const stop = (sig: string): void => {
      log('info', `${sig}: restoring the displays and exiting`, { event: 'stopping' });
      process.off('SIGHUP', onHup);
      void service.stop().then(() => daemon.stop()).then(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', onHup);
  });
}

export function registerKiosk(program: Command): void {
  program
    .command('kiosk')
    .description('kiosk mode: which VM planes go on which monitors: check a configuration, or run it')
    .option('--check <file>', 'validate this YAML configuration and print its plan per output')
    .option('--run <file>', 'present this configuration until SIGTERM (SIGHUP reloads it); logs on stderr')
    .option('--log-format <f>', 'json (JSON lines, for the journal) or pretty (readable; text is the same); default: the configuration\'s log.format')
    .option('--control-socket <path>', 'the control socket (default: the configuration\'s control.socket, /run/vgpu-flip/kiosk.sock)')
    .option('--schema-only', 'check only the file (schema and cross-field checks), no devices of this machine')
    .option('--json', 'JSON output for scripts: problems with line and column, the plan')
    .addHelpText(
      'after',
      '\nThe format is described by configs/vgpu-flip-kiosk.schema.json (generated from src/kiosk/schema.ts);\n' +
        'examples are in configs/. Exit status: 0 valid; 1 invalid configuration (every problem listed with\n' +
        'file:line:column); 2 usage error or unreadable file; 3 valid, but this machine does not fit it\n' +
        '(without --schema-only: devices, connectors, modes, vGPUs and TEST_ONLY of the planes are checked).',
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
