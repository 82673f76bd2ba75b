import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface DemoOptions {
  inside?: boolean;
  seconds: string;
  out?: string;
  guest?: string;
  size: string;
  path?: string;
  json?: boolean;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** where the PNG is written inside the VM: the checkout's .vm-out is the host's folder */
const VM_OUT = path.join('.vm-out', 'demo.png');

/** Checks the options before anything boots or changes on screen. */
function checkOptions(o: DemoOptions): { seconds: number; width: number; height: number } {
  const seconds = Number(o.seconds);
  if (!/^\d+(\.\d+)?$/.test(o.seconds) || seconds <= 0 || seconds > 600) throw new Error(`--seconds ${JSON.stringify(o.seconds)}: expected a number of seconds, 0 < n <= 600`);
  const m = /^(\d+)x(\d+)$/.exec(o.size);
  if (!m) throw new Error(`--size ${JSON.stringify(o.size)}: expected WxH, e.g. 800x600`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width < 64 || height < 64 || width > 1920 || height > 1080) throw new Error(`--size ${o.size}: the demo's vGPU (vgpu_sim-small) shows 64x64 up to 1920x1080`);
  if (o.guest && o.guest !== 'vgpu-sim' && o.guest !== 'loopback') throw new Error(`--guest ${JSON.stringify(o.guest)}: expected vgpu-sim or loopback`);
  if (o.path && !['drm-fb', 'dmabuf', 'region'].includes(o.path)) throw new Error(`--path ${JSON.stringify(o.path)}: expected drm-fb, dmabuf or region`);
  return { seconds, width, height };
}

/** Outside the VM: boot the built-in virtual host and run the demo in it. */
async function runOutside(o: DemoOptions): Promise<void> {
  checkOptions(o);
  const vm = path.join(packageRoot, 'test', 'rig', 'vm.sh');
  if (!existsSync(vm)) throw new Error(`the built-in virtual host is missing (${vm}); run \`bash setup.sh\` in ${packageRoot}`);
  // the PNG is written into the checkout's .vm-out (shared with the VM), then moved where asked
  const callerCwd = process.env['INIT_CWD'] ?? process.cwd();
  const want = path.resolve(callerCwd, o.out ?? path.join(packageRoot, VM_OUT));
  const inVm = path.resolve(packageRoot, VM_OUT) === want ? VM_OUT : path.join('.vm-out', `demo-${process.pid}.png`);
  const args = [
    vm,
    '--mdev', 'vgpu_sim-small',
    // bind vgpu-sim to vkms' card so the preferred DRM_FB path is offered (the kernel flips)
    '--param', 'vgpu_sim.host_card=card0',
    '--', 'node', 'bin/vgpu-flip.js', 'demo', '--inside', '--seconds', o.seconds, '--size', o.size, '--out', inVm,
  ];
  if (o.guest) args.push('--guest', o.guest);
  if (o.path) args.push('--path', o.path);
  if (o.json) args.push('--json');
  process.stderr.write(
    'vgpu-flip demo: starting the built-in virtual host: QEMU (TCG) running Debian\'s kernel with vkms as the monitor and vgpu-sim as the vGPU.\n' +
      '  The first run downloads and builds the kernel modules (a few minutes, progress below); later boots take about 10 s.\n' +
      `  (command: bash ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')})\n`,
  );
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('bash', args, { cwd: packageRoot, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  const png = path.resolve(packageRoot, inVm);
  if (code !== 0) throw new Error(`the demo in the virtual host failed (exit ${code}); the VM's kernel log is in ${path.join(packageRoot, '.vm-out', 'rig', 'last')}/`);
  if (!existsSync(png)) throw new Error(`the demo ran but ${png} was not written (is .vm-out shared with the VM?)`);
  if (png !== want) {
    mkdirSync(path.dirname(want), { recursive: true });
    renameSync(png, want);
  }
  process.stdout.write(`\nscreen capture: ${want}\n`);
}

/** Inside the VM (or any host with vkms): be the guest, assign through a session, capture. */
async function runInside(o: DemoOptions): Promise<void> {
  const { seconds, width: GW, height: GH } = checkOptions(o);
  const out = (s: string): void => {
    process.stdout.write(s);
  };
  out('virtual host up: opening vkms and the vGPU\n');
  const { DrmDevice } = await import('../../kms/index.js');
  const { drawPattern, drawCursor, patternPixel, cursorPixel } = await import('../../flip/pattern.js');
  const { compareRegion, frameToPng } = await import('../../capture/writeback.js');
  const { findCard, openGuest } = await import('../../bench/setup.js');
  const { installExitHandlers, openSession } = await import('../../flip/session.js');
  const { CallCounter, IOCTL_CALLS } = await import('../../flip/counting.js');
  const { attachStatus } = await import('./assign.js');
  const card = findCard();
  const dev = DrmDevice.open(card, { writeback: true }); // first: it becomes DRM master
  const guest = await openGuest(card, o.guest as 'vgpu-sim' | 'loopback' | undefined);
  let session: Awaited<ReturnType<typeof openSession>> | null = null;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    try {
      await session?.close();
    } finally {
      guest.close();
      dev.close();
    }
  };
  const removeHandlers = installExitHandlers(close, (s) => process.stderr.write(`${s}\n`));
  let detach = (): void => undefined;
  try {
    out(`virtual host: ${card} (${dev.version.name}); guest: ${guest.description}\n`);
    // the guest: an animated pattern on its primary plane and an arrow cursor (hotspot 1,1)
    guest.setPrimary(GW, GH);
    let t = 0;
    guest.presentPrimary(drawPattern(GW, GH, t));
    guest.setCursor(drawCursor(64), 64, 1, 1);
    const cursorAt = (i: number): [number, number] => [
      Math.round(GW / 2 + (GW / 3) * Math.cos(i / 15)),
      Math.round(GH / 2 + (GH / 3) * Math.sin(i / 15)),
    ];
    guest.moveCursor(...cursorAt(0));

    session = openSession({
      drmDevice: dev,
      ...(guest.vfio ? { vfioDevice: guest.vfio } : { guestSource: guest.source!() }),
      planes: ['primary', 'cursor'],
      crtc: 0,
      placement: { kind: 'center' },
      ...(o.path ? { path: o.path.replace('-', '_') as 'drm_fb' | 'dmabuf' | 'region' } : {}),
      writeback: true,
    });
    const engine = session.engine;
    const pathName = { drm_fb: 'DRM_FB (the vendor driver\'s host framebuffer; the kernel flips it)', dmabuf: 'DMABUF (zero copy: import + atomic flip per frame)', region: 'REGION (copy path)' }[session.path];
    out(`checks before touching the screen:\n${session.checks.map((c) => `  ${c}`).join('\n')}\n`);
    out(`display path: ${pathName}\n`);
    detach = attachStatus(engine, { json: !!o.json, tty: false, out, intervalMs: 1000 });
    (await import('../../debugfs/assignment-state.js')).publishAssignmentState(engine, { command: 'demo', vgpu: guest.vfio?.uuid ?? null }); // removed when the engine stops
    const assigned = engine.waitAssigned(10_000);
    engine.start();
    await assigned;

    // figures over the animation only (not the assignment)
    const frames = new Set<number>();
    const lat: number[] = [];
    let imports = 0;
    engine.on('frame', (e) => {
      if (e.sequence === 0) return; // an assignment commit, or a DRM_FB buffer change the kernel flipped
      if (e.imported) imports++;
      if (frames.has(e.sequence)) return; // one entry per flip (both planes can share it)
      frames.add(e.sequence);
      lat.push(e.latencyVblanks);
    });
    const counter: InstanceType<typeof CallCounter> = engine.counter;
    const before = counter.snapshot();
    const stats0 = structuredClone(engine.stats);
    const flips0 = engine.path === 'drm_fb' ? engine.drmFbCounters() : null;
    const cpu0 = process.cpuUsage();
    let guestCpuUs = 0;
    const t0 = Date.now();
    const end = t0 + seconds * 1000;
    let guestFrames = 0;
    let stoppedWhy: string | null = null;
    void session.done.then((why) => {
      stoppedWhy = why;
    });
    while (Date.now() < end && stoppedWhy === null) {
      t++;
      const g0 = process.cpuUsage();
      guest.presentPrimary(drawPattern(GW, GH, t));
      guest.moveCursor(...cursorAt(t));
      const g = process.cpuUsage(g0);
      guestCpuUs += g.user + g.system;
      guestFrames++;
      await new Promise((r) => setTimeout(r, 16));
    }
    if (stoppedWhy !== null) throw new Error(`the engine stopped: ${stoppedWhy}`);
    await new Promise((r) => setTimeout(r, 150)); // let the last guest frame reach the screen
    const secs = (Date.now() - t0) / 1000;
    const calls = counter.since(before);
    const cpu = process.cpuUsage(cpu0);
    const shot = await engine.capture();
    const file = path.resolve(process.cwd(), o.out ?? VM_OUT);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, frameToPng(shot));

    // the capture against what the guest drew last
    const layout = engine.assignedLayout!;
    const prim = layout.assignments.find((a) => a.guest === 'primary')!;
    const cur = layout.assignments.find((a) => a.guest === 'cursor');
    const [gx, gy] = cursorAt(t);
    const cx = prim.dst.x + gx;
    const cy = prim.dst.y + gy;
    const inCursor = (x: number, y: number): boolean => {
      const u = x - cx;
      const v = y - cy;
      return u >= 0 && v >= 0 && u < 64 && v < 64 && cursorPixel(u, v) >>> 24 !== 0;
    };
    const cmpP = compareRegion(shot, prim.dst.x, prim.dst.y, GW, GH, (x, y) =>
      inCursor(x + prim.dst.x, y + prim.dst.y) ? null : patternPixel(x, y, GW, GH, t),
    );
    const cmpC = cur ? compareRegion(shot, cx, cy, 64, 64, (x, y) => (cursorPixel(x, y) >>> 24 !== 0 ? cursorPixel(x, y) & 0xffffff : null)) : null;
    detach();

    // figures
    const s = engine.stats;
    const d = (k: 'commits' | 'frames' | 'errors'): number => s[k] - stats0[k];
    const plane = (k: 'primary' | 'cursor', f: 'cacheHits' | 'moves' | 'bytesCopied' | 'imports'): number => (s.planes[k]?.[f] ?? 0) - (stats0.planes[k]?.[f] ?? 0);
    const ioctls = CallCounter.ioctls(calls);
    const byKind = Object.entries(calls)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k}${IOCTL_CALLS.has(k) ? '' : ' (syscall)'} ${v}`)
      .join(', ');
    const drmFb = engine.path === 'drm_fb' ? engine.drmFbCounters() : null;
    const guestFlips = drmFb && flips0 && drmFb.guestFlips !== null && flips0.guestFlips !== null ? drmFb.guestFlips - flips0.guestFlips : guestFrames;
    const shown = drmFb ? guestFlips : frames.size;
    const perShown = (n: number): string => (shown ? (n / shown).toFixed(2) : '-');
    const toolCpuUs = Math.max(0, cpu.user + cpu.system - guestCpuUs);
    const copied = plane('primary', 'bytesCopied') + plane('cursor', 'bytesCopied');
    const rows: [string, string][] = [
      ['display path', session.path === 'drm_fb' ? 'DRM_FB: one commit to assign, then the kernel flips' : session.path.toUpperCase()],
      ['guest frames drawn', `${guestFrames} in ${secs.toFixed(1)} s (${(guestFrames / secs).toFixed(1)} fps; drawing the pattern in JavaScript under TCG limits the rate)`],
    ];
    if (drmFb && flips0) {
      rows.push(
        ['frames on screen', `${guestFlips} guest flips, each flipped by the kernel (vgpu-sim's in-kernel commit); the tool saw ${drmFb.kernelFlipsSeen - flips0.kernelFlipsSeen} of them go by`],
        ['user-space commits', `${d('commits')} during the animation (re-assignments ${drmFb.assignCommits - flips0.assignCommits}, the others move the cursor plane)`],
      );
    } else {
      rows.push(
        ['frames presented', `${frames.size} (${(frames.size / secs).toFixed(1)} fps), ${d('commits')} commits`],
        ['framebuffer imports', `${imports} (cache hits: primary ${plane('primary', 'cacheHits')}, cursor ${plane('cursor', 'cacheHits')})`],
      );
    }
    rows.push(
      ['cursor moves', `${plane('cursor', 'moves')} (position only, no re-import)`],
      ['ioctls', `${ioctls} = ${perShown(ioctls)} per frame on screen (${byKind})`],
      ['', `the engine looks at each guest plane ${engine.guest.events ? `when the vGPU's display event signals a change (IRQ ${engine.guest.events.desc.index})` : drmFb ? 'every 100 ms' : 'once per vblank'} (QUERY_GFX_PLANE); a frame the guest did not change costs no commit`],
      ['bytes copied per frame', `${shown ? Math.round(copied / shown) : 0}${copied === 0 ? ' (zero copy)' : ''}`],
      ['tool CPU time per frame', `${shown ? (toolCpuUs / shown / 1000).toFixed(2) : '-'} ms (the guest's drawing, ${(guestCpuUs / Math.max(1, guestFrames) / 1000).toFixed(1)} ms per frame, not counted)`],
    );
    if (!drmFb) rows.push(['flip latency', `${(lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)).toFixed(2)} vblanks commit -> flip (max ${Math.max(0, ...lat)})`]);
    rows.push(['errors', String(d('errors'))]);
    const w = Math.max(...rows.map((r) => r[0].length));
    const match = `primary ${cmpP.total - cmpP.mismatches}/${cmpP.total} pixels match the guest's last frame` + (cmpC ? `, cursor ${cmpC.total - cmpC.mismatches}/${cmpC.total}` : '');
    if (o.json) {
      out(JSON.stringify({ type: 'demo', path: session.path, checks: session.checks, explanation: engine.lastExplanation, layout, guestFrames, seconds: secs, framesPresented: shown, commits: d('commits'), imports, calls, bytesCopied: copied, toolCpuUs, guestCpuUs, latencyVblanks: lat, drmFb, capture: { width: shot.width, height: shot.height, primaryMismatches: cmpP.mismatches, cursorMismatches: cmpC?.mismatches ?? null, file } }) + '\n');
    } else {
      out('\nassignment (which hardware plane, and why):\n' + engine.lastExplanation.map((l) => `  ${l}`).join('\n') + '\n');
      out('\nfigures over the animation:\n' + rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n');
      out(`\ncapture through vkms' writeback connector (${shot.width}x${shot.height}, fence after ${shot.waitMs} ms): ${match}\n`);
      out(`screen capture written: ${file}\n`);
    }
    if (cmpP.mismatches || (cmpC && cmpC.mismatches)) {
      throw new Error(`the captured screen differs from the guest's frame (first difference: ${JSON.stringify(cmpP.first ?? cmpC?.first)})`);
    }
  } finally {
    detach();
    await close();
    removeHandlers();
  }
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('show the whole product without a real vGPU: boots the built-in virtual host, animates a guest, assigns its planes, captures the screen to a PNG')
    .option('--seconds <n>', 'how long the guest animates', '3')
    .option('--size <WxH>', 'guest display size', '800x600')
    .option('--out <file>', 'PNG to write (default .vm-out/demo.png in the package)')
    .option('--guest <kind>', 'vgpu-sim (default when loaded) or loopback')
    .option('--path <path>', 'force a display path: drm-fb, dmabuf or region (default: the best the vGPU offers)')
    .option('--inside', 'run the demo here (inside the virtual host, or on a host with vkms); automatic inside the test rig')
    .option('--json', 'JSON lines for the status and the result')
    .action(async (o: DemoOptions) => {
      if (o.inside || process.env['VGPU_FLIP_IN_VM'] === '1') await runInside(o);
      else await runOutside(o);
    });
}
