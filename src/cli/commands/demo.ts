import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface DemoOptions {
  inside?: boolean;
  seconds: string;
  out?: string;
  guest?: string;
  size: string;
  json?: boolean;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Outside the VM: boot the built-in virtual host and run the demo in it. */
async function runOutside(o: DemoOptions): Promise<void> {
  const vm = path.join(packageRoot, 'test', 'rig', 'vm.sh');
  if (!existsSync(vm)) throw new Error(`the built-in virtual host is missing (${vm}); run \`bash setup.sh\` in ${packageRoot}`);
  const outRel = o.out ?? path.join('.vm-out', 'demo.png');
  const args = [vm, '--mdev', 'vgpu_sim-small', '--', 'node', 'bin/vgpu-flip.js', 'demo', '--inside', '--seconds', o.seconds, '--size', o.size, '--out', outRel];
  if (o.guest) args.push('--guest', o.guest);
  if (o.json) args.push('--json');
  process.stdout.write(`starting the virtual host (QEMU + Debian kernel + vkms + vgpu-sim): bash ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}\n`);
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('bash', args, { cwd: packageRoot, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  const png = path.resolve(packageRoot, outRel);
  if (code !== 0) throw new Error(`the demo in the virtual host failed (exit ${code})`);
  if (!existsSync(png)) throw new Error(`the demo ran but ${png} was not written (is .vm-out shared with the VM?)`);
  process.stdout.write(`\nscreen capture: ${png}\n`);
}

/** Inside the VM (or any host with vkms): be the guest, assign, capture. */
async function runInside(o: DemoOptions): Promise<void> {
  const { DrmDevice } = await import('../../kms/index.js');
  const { FlipEngine } = await import('../../flip/engine.js');
  const { CallCounter } = await import('../../flip/counting.js');
  const { drawPattern, drawCursor, patternPixel, cursorPixel } = await import('../../flip/pattern.js');
  const { compareRegion, frameToPng } = await import('../../capture/writeback.js');
  const { findCard, openGuest } = await import('../../bench/setup.js');
  const { installExitHandlers } = await import('../../flip/session.js');
  const { attachStatus } = await import('./assign.js');
  const out = (s: string): void => {
    process.stdout.write(s);
  };
  const m = /^(\d+)x(\d+)$/.exec(o.size);
  if (!m) throw new Error(`--size ${o.size}: expected WxH`);
  const GW = Number(m[1]);
  const GH = Number(m[2]);
  const card = findCard();
  const dev = DrmDevice.open(card, { writeback: true });
  const guest = await openGuest(card, o.guest as 'vgpu-sim' | 'loopback' | undefined);
  out(`virtual host: ${card} (${dev.version.name}); guest: ${guest.description}\n`);
  const counter = new CallCounter();
  const engine = new FlipEngine({
    drm: dev,
    ...(guest.vfio ? { vfio: guest.vfio } : { guest: () => guest.source!() }),
    crtcIndex: 0,
    planes: [{ kind: 'primary', placement: { kind: 'center' } }, { kind: 'cursor' }],
    counter,
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await engine.stop();
    guest.close();
    dev.close();
  };
  const removeHandlers = installExitHandlers(close, (s) => process.stderr.write(`${s}\n`));
  const detach = attachStatus(engine, { json: !!o.json, tty: false, out, intervalMs: 1000 });
  try {
    // the guest: animated pattern + arrow cursor
    guest.setPrimary(GW, GH);
    let t = 0;
    guest.presentPrimary(drawPattern(GW, GH, t));
    guest.setCursor(drawCursor(64), 64, 0, 0);
    const cursorAt = (i: number): [number, number] => [
      Math.round(GW / 2 + (GW / 3) * Math.cos(i / 15)),
      Math.round(GH / 2 + (GH / 3) * Math.sin(i / 15)),
    ];
    guest.moveCursor(...cursorAt(0));
    const assigned = engine.waitAssigned(10_000);
    engine.start();
    await assigned;
    const frames: number[] = [];
    const lat: number[] = [];
    let imports = 0;
    engine.on('frame', (e) => {
      if (e.sequence === 0) return;
      if (e.imported) imports++;
      if (frames[frames.length - 1] === e.sequence) return; // one entry per flip (both planes share it)
      frames.push(e.sequence);
      lat.push(e.latencyVblanks);
    });
    const before = counter.snapshot();
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    const end = t0 + Number(o.seconds) * 1000;
    let guestFlips = 0;
    while (Date.now() < end) {
      t++;
      guest.presentPrimary(drawPattern(GW, GH, t));
      guest.moveCursor(...cursorAt(t));
      guestFlips++;
      await new Promise((r) => setTimeout(r, 33));
    }
    await new Promise((r) => setTimeout(r, 100)); // let the last guest frame reach the screen
    const secs = (Date.now() - t0) / 1000;
    const calls = counter.since(before);
    const cpu = process.cpuUsage(cpu0);
    const shot = await engine.capture();
    const file = path.resolve(process.cwd(), o.out ?? path.join('.vm-out', 'demo.png'));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, frameToPng(shot));
    // check the capture against what the guest drew last
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
    const s = engine.stats;
    const ioctls = CallCounter.ioctls(calls);
    const nFrames = Math.max(1, frames.length);
    out('\nassignment:\n' + engine.lastExplanation.map((l) => `  ${l}`).join('\n') + '\n');
    out('\nper-frame figures:\n');
    out(`  guest frames drawn        ${guestFlips} in ${secs.toFixed(1)} s\n`);
    out(`  frames presented          ${frames.length} (${(frames.length / secs).toFixed(1)} fps), ${s.commits} commits\n`);
    out(`  framebuffer imports       ${imports} (cache hits ${s.planes.primary?.cacheHits ?? 0} primary, ${s.planes.cursor?.cacheHits ?? 0} cursor)\n`);
    out(`  cursor moves              ${s.planes.cursor?.moves ?? 0} (position only, no re-import)\n`);
    out(`  ioctls per frame          ${(ioctls / nFrames).toFixed(2)}  (${Object.entries(calls).map(([k, v]) => `${k} ${(v / nFrames).toFixed(2)}`).join(', ')})\n`);
    out(`  bytes copied per frame    ${((s.planes.primary?.bytesCopied ?? 0) + (s.planes.cursor?.bytesCopied ?? 0)) / nFrames}\n`);
    out(`  CPU time per frame        ${((cpu.user + cpu.system) / nFrames / 1000).toFixed(2)} ms (includes drawing the guest's pattern)\n`);
    out(`  flip latency              ${(lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)).toFixed(2)} vblanks (max ${Math.max(0, ...lat)})\n`);
    out(`  errors                    ${s.errors}\n`);
    out(`\ncapture (writeback ${shot.width}x${shot.height}, fence after ${shot.waitMs} ms): primary ${cmpP.total - cmpP.mismatches}/${cmpP.total} pixels match the guest's last frame` +
      (cmpC ? `, cursor ${cmpC.total - cmpC.mismatches}/${cmpC.total}` : '') + '\n');
    out(`screen capture written: ${file}\n`);
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
    .option('--out <file>', 'PNG to write (relative to the package root; default .vm-out/demo.png)')
    .option('--guest <kind>', 'vgpu-sim (default when loaded) or loopback')
    .option('--inside', 'run the demo here (inside the virtual host, or on a host with vkms)')
    .option('--json', 'JSON lines for the status')
    .action(async (o: DemoOptions) => {
      if (o.inside) await runInside(o);
      else await runOutside(o);
    });
}
