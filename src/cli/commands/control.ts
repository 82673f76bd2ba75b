import type { Command } from 'commander';

/** exit statuses of `vgpu-flip status | screenshot | reload` */
export const CONTROL_EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

export interface ControlIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

interface CommonOpts {
  socket?: string;
  json?: boolean;
  timeout?: string;
}

async function ask(
  cmd: 'status' | 'screenshot' | 'reload',
  extra: Record<string, unknown>,
  opts: CommonOpts,
  io: ControlIo,
): Promise<{ code: number; res?: import('../../kiosk/control-protocol.js').Response & { ok: true } }> {
  const { request, ControlError } = await import('../../kiosk/control-client.js');
  const { DEFAULT_CONTROL_SOCKET } = await import('../../kiosk/control-protocol.js');
  const socket = opts.socket ?? DEFAULT_CONTROL_SOCKET;
  const timeoutS = opts.timeout === undefined ? 30 : Number(opts.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
    io.stderr(`vgpu-flip ${cmd}: --timeout ${JSON.stringify(opts.timeout)}: expected a positive number of seconds\n`);
    return { code: CONTROL_EXIT.usage };
  }
  try {
    const res = await request(socket, { cmd, ...extra } as import('../../kiosk/control-protocol.js').Request, timeoutS * 1000);
    if (!res.ok) {
      io.stderr(`vgpu-flip ${cmd}: the daemon says: ${res.error}\n`);
      return { code: CONTROL_EXIT.refused };
    }
    return { code: CONTROL_EXIT.ok, res };
  } catch (e) {
    if (!(e instanceof ControlError)) throw e;
    io.stderr(`vgpu-flip ${cmd}: ${e.message}\n`);
    return { code: e.code === 'EPROTO' ? CONTROL_EXIT.refused : CONTROL_EXIT.unreachable };
  }
}

/** `vgpu-flip status [--json]`: per output and layer, what the kiosk daemon presents and how well. */
export async function runStatus(opts: CommonOpts, io: ControlIo): Promise<number> {
  const { code, res } = await ask('status', {}, opts, io);
  if (!res || res.cmd !== 'status') return code;
  if (opts.json) io.stdout(JSON.stringify(res.status, null, 2) + '\n');
  else {
    const { renderStatus } = await import('../../kiosk/status-render.js');
    io.stdout(renderStatus(res.status as import('../../kiosk/status.js').StatusReport));
  }
  return code;
}

/** `vgpu-flip screenshot [--output NAME] FILE.png`: the daemon takes the picture, this process writes it. */
export async function runScreenshot(file: string, opts: CommonOpts & { output?: string; method?: string }, io: ControlIo): Promise<number> {
  if (!/\.png$/i.test(file)) {
    io.stderr(`vgpu-flip screenshot: ${JSON.stringify(file)}: the file name must end in .png\n`);
    return CONTROL_EXIT.usage;
  }
  const { SCREENSHOT_METHODS } = await import('../../kiosk/control-protocol.js');
  if (opts.method !== undefined && !(SCREENSHOT_METHODS as readonly string[]).includes(opts.method)) {
    io.stderr(`vgpu-flip screenshot: --method ${JSON.stringify(opts.method)}: expected ${SCREENSHOT_METHODS.join(', ')}\n`);
    return CONTROL_EXIT.usage;
  }
  const { code, res } = await ask('screenshot', { ...(opts.output ? { output: opts.output } : {}), ...(opts.method ? { method: opts.method } : {}) }, opts, io);
  if (!res || res.cmd !== 'screenshot') return code;
  const { writeFileSync } = await import('node:fs');
  const png = Buffer.from(res.png, 'base64');
  try {
    writeFileSync(file, png);
  } catch (e) {
    io.stderr(`vgpu-flip screenshot: cannot write ${file}: ${(e as Error).message}\n`);
    return CONTROL_EXIT.refused;
  }
  const how = res.method === 'compose' ? 'composed from the layers\' buffers' : res.method === 'writeback' ? 'read back by the writeback connector' : 'read back by the writeback connector alone (the monitor blanked for a frame)';
  if (opts.json) io.stdout(JSON.stringify({ file, output: res.output, method: res.method, width: res.width, height: res.height, bytes: png.length, notes: res.notes }) + '\n');
  else io.stdout(`${file}: output ${res.output}, ${res.width}x${res.height}, ${how}\n${res.notes.map((n) => `  note: ${n}\n`).join('')}`);
  return code;
}

/** `vgpu-flip reload`: the daemon re-reads its configuration (as SIGHUP does) and says whether it took it. */
export async function runReload(opts: CommonOpts, io: ControlIo): Promise<number> {
  const { code, res } = await ask('reload', {}, opts, io);
  if (!res || res.cmd !== 'reload') return code;
  if (opts.json) io.stdout(JSON.stringify({ applied: res.applied, message: res.message, problems: res.problems }, null, 2) + '\n');
  else {
    (res.applied ? io.stdout : io.stderr)(res.message + '\n');
    for (const p of res.problems) io.stderr(`  ${p.text}\n`);
  }
  return res.applied ? CONTROL_EXIT.ok : CONTROL_EXIT.refused;
}

const HELP_AFTER =
  '\nTalks to a running `vgpu-flip kiosk --run` over its control socket (root, or the configuration\'s\n' +
  'control.group). Exit status: 0 done; 1 the daemon refused or failed (its reason is printed);\n' +
  '2 usage error; 3 no daemon reachable on the socket.';

export function registerControl(program: Command): void {
  const io: ControlIo = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };
  const common = (c: Command): Command =>
    c
      .option('--socket <path>', 'the kiosk daemon\'s control socket (default /run/vgpu-flip/kiosk.sock)')
      .option('--timeout <seconds>', 'how long to wait for the answer (default 30)')
      .addHelpText('after', HELP_AFTER)
      .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : CONTROL_EXIT.usage));
  common(
    program
      .command('status')
      .description('what the kiosk daemon presents: per output and layer the VM, display path, fps, frames, copies, errors, latency')
      .option('--json', 'the report as JSON, for scripts'),
  ).action(async (o: CommonOpts) => void (process.exitCode = await runStatus(o, io)));
  common(
    program
      .command('screenshot')
      .argument('<file.png>', 'where to write the picture (PNG)')
      .description('a picture of what an output of the kiosk daemon shows (writeback where the device has it, else composed from the layers)')
      .option('--output <name>', 'the output, by its name in the configuration (needed when several present)')
      .option('--method <how>', 'auto (default: writeback beside the display, else composed), writeback (also when the CRTC must be routed to it alone: the monitor blanks for a frame), compose')
      .option('--json', 'one JSON line about the picture'),
  ).action(async (file: string, o: CommonOpts & { output?: string; method?: string }) => void (process.exitCode = await runScreenshot(file, o, io)));
  common(
    program
      .command('reload')
      .description('make the kiosk daemon reload its configuration (like SIGHUP) and print its verdict, with every problem of a broken file')
      .option('--json', 'the verdict as JSON'),
  ).action(async (o: CommonOpts) => void (process.exitCode = await runReload(o, io)));
}
