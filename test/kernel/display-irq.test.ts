// Kernel tests of vgpu-sim's display event IRQ (native/include/vfio_gfx_display_irq.h,
// native/vgpu-sim/display_irq.c) through the addon (vfioIrqInfo, vfioSetIrqs, eventfds),
// src/vfio/display-irq.ts and the debugfs guest. Run in the VM:
//   bash test/rig/vm.sh --check-dmesg -- npx vitest run --configLoader runner --project kernel test/kernel/display-irq.test.ts
// Nothing here skips: a missing module or device fails the test. Timing: the checks are counts
// against vgpu-sim's own vblank sequence (debugfs), never against wall-clock rates.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { isKernelError } from '../../src/binding/errors.js';
import { VfioDevice } from '../../src/vfio/device.js';
import {
  DisplayIrq,
  VFIO_GFX_DISPLAY_CUR_EVENT_VAL as CUR,
  VFIO_GFX_DISPLAY_PRI_EVENT_VAL as PRI,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  describeDisplayIrq,
  findDisplayIrq,
  walkIrqInfo,
} from '../../src/vfio/display-irq.js';
import { SimGuest, createSimInstance, listSimTypes, type SimInstance } from '../../src/vgpu-sim/index.js';
import { inspectVgpus } from '../../src/inspect/collect.js';
import { vgpuJson } from '../../src/inspect/json.js';
import { renderVgpus } from '../../src/inspect/text.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const W = 640;
const H = 480;
const OFF_B = 0x200000;
const IDX = 5;

/** what vgpu-sim answers for GET_IRQ_INFO index 5 (the same bytes as test/host/display-irq.test.ts) */
const VSIM_INFO_HEX =
  '40000000130000000500000001000000180000000000000001000100280000000100000001000000' +
  '02000100000000000000000000000100' + '0000000000000001';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isKernelError(e)) return e.code;
    throw e;
  }
  return 'OK';
}

let inst: SimInstance | null = null;
let headless: SimInstance | null = null;
let dev: VfioDevice;
let guest: SimGuest;
let irq: DisplayIrq | null = null;
let tmp = '';

/** the counter after at most `ms` (null: nothing signalled in that time) */
function waitRead(d: DisplayIrq, ms: number): bigint | null {
  if (!native.pollWait(d.fd, ms)) return null;
  return native.eventfdRead(d.fd);
}

/** read whatever is there now and wait until vgpu-sim has nothing pending or armed */
async function drain(d: DisplayIrq): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const s = guest.displayIrq();
    if (!s.armed && s.pending === 0n) break;
    await sleep(20);
  }
  native.eventfdRead(d.fd);
}

beforeAll(() => {
  expect(listSimTypes().map((t) => t.name), 'vgpu_sim module not loaded (the rig loads vgpu_sim.ko)').toEqual(
    expect.arrayContaining(['vgpu_sim-small', 'vgpu_sim-headless']),
  );
  tmp = process.env.TMPDIR ?? '/tmp';
  for (const t of ['display-irq-check', 'irq-check']) {
    execFileSync('gcc', ['-O1', '-Wall', '-o', path.join(tmp, `vsim-${t}-${process.pid}`), path.join(REPO, `native/vgpu-sim/tools/${t}.c`)], { stdio: 'pipe' });
  }
  inst = createSimInstance('vgpu_sim-small');
  guest = new SimGuest(inst.uuid);
  dev = VfioDevice.open(inst.uuid);
});

afterAll(() => {
  try {
    irq?.close();
    dev?.close();
  } finally {
    inst?.remove();
    headless?.remove();
  }
});

function tool(name: string, fd: number, ...args: string[]): Record<string, unknown> {
  const r = spawnSync(path.join(tmp, `vsim-${name}-${process.pid}`), ['3', ...args], { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('discovery: VFIO_DEVICE_GET_INFO and GET_IRQ_INFO', () => {
  it('reports 6 IRQ indexes; index 5 has EVENTFD|MASKABLE|CAPS, count 1 and the chain TYPE(GFX, DISPLAY_IRQ) -> DISPLAY(cur 1<<48, pri 1<<56)', () => {
    expect(dev.info().numIrqs).toBe(6);
    const info = native.vfioIrqInfo(dev.fd, IDX);
    expect(info).toMatchObject({ index: IDX, flags: 0x13, count: 1, argsz: 64, capOffset: 24 });
    expect(info.caps.map((c) => [c.id, c.version, c.offset])).toEqual([[1, 1, 24], [2, 1, 40]]);
    expect(info.raw.toString('hex')).toBe(VSIM_INFO_HEX); // the recorded bytes of the host test
    // the addon's header walk and the TypeScript one agree
    expect(walkIrqInfo(info.raw).caps.map((c) => [c.id, c.offset, c.data.toString('hex')])).toEqual(
      info.caps.map((c) => [c.id, c.offset, c.data.toString('hex')]),
    );
    expect(describeDisplayIrq(info)).toEqual({ index: IDX, flags: 0x13, count: 1, maskable: true, events: { curEventVal: CUR, priEventVal: PRI } });
    expect(findDisplayIrq(dev)?.index).toBe(IDX);
    expect(guest.displayIrq()).toMatchObject({ index: IDX, hz: 60, eventfd: false, masked: false });
  });

  it('leaves the fixed indexes 0-4 as they were (no FLAG_CAPS) and has nothing past index 5', () => {
    const flags = [0, 1, 2, 3, 4].map((i) => native.vfioIrqInfo(dev.fd, i));
    expect(flags.map((f) => [f.flags, f.count, f.caps.length, f.raw.length])).toEqual([
      [7, 1, 0, 16], [9, 0, 0, 16], [1, 0, 0, 16], [1, 1, 0, 16], [1, 1, 0, 16],
    ]);
    expect(errnoOf(() => native.vfioIrqInfo(dev.fd, 6))).toBe('EINVAL');
    // the PCI IRQ tool's "bad index" is now the first index past num_irqs: still EINVAL
    expect(tool('irq-check', dev.fd)).toMatchObject({ bad_index: 22, intx_set: 0, intx_signalled: 1 });
  });

  it('answers short argsz as the uapi says (argsz needed, cap_offset 0) and rejects odd SET_IRQS', () => {
    expect(tool('display-irq-check', dev.fd)).toEqual({
      argsz16: { err: 0, argsz: 64, flags: 0x13, count: 1, byte16: 0xee }, // 6.1 struct: nothing written past it
      argsz20: { err: 0, argsz: 64, cap_offset: 0, byte20: 0xee },
      argsz15: 22,
      info_past: 22,
      attach: 0,
      fire_bool_false: 0,
      signalled_false: 0,
      bad_fd_negative: 22, // only -1 means "none"
      bad_fd: 9, // EBADF
      not_eventfd: 22, // fd 0 is not an eventfd
      unmask_eventfd: 22,
      two_actions: 22,
      count2: 22,
      short_data: 22,
      set_past: 22,
      detach: 0,
    });
    expect(guest.displayIrq().eventfd).toBe(false);
  });

  it('a headless instance (no display) has no display event IRQ', () => {
    headless = createSimInstance('vgpu_sim-headless');
    const h = VfioDevice.open(headless.uuid);
    try {
      expect(h.info().numIrqs).toBe(5);
      expect(errnoOf(() => native.vfioIrqInfo(h.fd, IDX))).toBe('EINVAL');
      expect(errnoOf(() => native.vfioSetIrqs(h.fd, IDX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0))).toBe('EINVAL');
      expect(findDisplayIrq(h)).toBeNull();
      expect(DisplayIrq.attach(h)).toBeNull();
      expect(new SimGuest(headless.uuid).displayIrq().index).toBeNull();
    } finally {
      h.close();
      headless.remove();
      headless = null;
    }
  });
});

describe('SET_IRQS: attach, loopback trigger, detach, mask', () => {
  it('attaches an eventfd, fires it with DATA_NONE and DATA_BOOL (both planes), detaches with fd -1 and with DATA_NONE count 0', () => {
    irq = DisplayIrq.attach(dev)!;
    expect(irq).not.toBeNull();
    expect(guest.displayIrq()).toMatchObject({ eventfd: true, pending: 0n });
    expect(native.eventfdRead(irq.fd)).toBeNull();
    irq.trigger(); // DATA_NONE count 1
    expect(native.eventfdRead(irq.fd)).toBe(PRI | CUR);
    native.vfioSetIrqs(dev.fd, IDX, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [true]);
    expect(irq.read()).toMatchObject({ primary: true, cursor: true, primarySignals: 1, cursorSignals: 1, all: false });
    native.vfioSetIrqs(dev.fd, IDX, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [false]);
    expect(native.eventfdRead(irq.fd)).toBeNull();
    const loop0 = guest.displayIrq().loopbacks;

    // detach with -1: the eventfd is no longer signalled
    native.vfioSetIrqs(dev.fd, IDX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [-1]);
    expect(guest.displayIrq().eventfd).toBe(false);
    irq.trigger();
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    expect(waitRead(irq, 300)).toBeNull();
    expect(guest.displayIrq()).toMatchObject({ loopbacks: loop0, pending: 0n, armed: false });

    // attach again (starts with nothing pending), detach with DATA_NONE count 0
    native.vfioSetIrqs(dev.fd, IDX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [irq.fd]);
    expect(guest.displayIrq()).toMatchObject({ eventfd: true, pending: 0n });
    native.vfioSetIrqs(dev.fd, IDX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0);
    expect(guest.displayIrq().eventfd).toBe(false);
    irq.trigger();
    expect(native.eventfdRead(irq.fd)).toBeNull();
    // and back on for the rest of the file
    native.vfioSetIrqs(dev.fd, IDX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [irq.fd]);
  });

  it('mask: nothing is signalled while masked, what came in is delivered once after unmask', async () => {
    await drain(irq!);
    irq!.mask();
    expect(guest.displayIrq().masked).toBe(true);
    irq!.trigger();
    guest.flip('primary', OFF_B);
    guest.flip('primary', 0);
    expect(waitRead(irq!, 400)).toBeNull();
    const s = guest.displayIrq();
    expect(s).toMatchObject({ masked: true, pending: PRI | CUR });
    irq!.unmask();
    expect(waitRead(irq!, 10_000)).toBe(PRI | CUR); // one signal: the flips and the loopback together
    expect(waitRead(irq!, 400)).toBeNull();
    expect(guest.displayIrq()).toMatchObject({ masked: false, pending: 0n, signals: s.signals + 1 });
  });
});

describe('guest display events', () => {
  it('an idle guest signals nothing for 2 s (while its vblank clock runs)', async () => {
    await drain(irq!);
    const s0 = guest.displayIrq();
    expect(waitRead(irq!, 2000)).toBeNull();
    const s1 = guest.displayIrq();
    expect(s1.signals).toBe(s0.signals);
    expect(s1.events).toBe(s0.events);
    expect(s1.vblank).toBeGreaterThan(s0.vblank);
  });

  it('one guest flip gives exactly one primary signal; one cursor move exactly one cursor signal', async () => {
    await drain(irq!);
    const s0 = guest.displayIrq();
    guest.flip('primary', OFF_B);
    const v = waitRead(irq!, 10_000);
    expect(v).toBe(PRI);
    expect(waitRead(irq!, 500)).toBeNull();
    const s1 = guest.displayIrq();
    expect(s1.signals).toBe(s0.signals + 1);
    expect(s1.lastSignalVblank).toBeGreaterThanOrEqual(s0.vblank);

    guest.setMode('cursor', { fourcc: 'AR24', width: 64, height: 64, offset: 0x400000, x: 10, y: 10 });
    expect(waitRead(irq!, 10_000)).toBe(CUR);
    guest.move('cursor', 20, 30);
    expect(waitRead(irq!, 10_000)).toBe(CUR);
    expect(waitRead(irq!, 500)).toBeNull();
  });

  it('the first change of a vblank period is signalled at once; the next one in that period waits for the boundary', async () => {
    await drain(irq!);
    for (let i = 0; i < 400; i++) { // a period that has had no signal yet
      const s = guest.displayIrq();
      if (s.vblank > s.lastSignalVblank) break;
      await sleep(5);
    }
    const s0 = guest.displayIrq();
    expect(s0.vblank).toBeGreaterThan(s0.lastSignalVblank);
    guest.flip('primary', 0);
    expect(native.eventfdRead(irq!.fd), 'signalled by the time the guest\'s write returned').toBe(PRI);
    const s1 = guest.displayIrq();
    expect(s1).toMatchObject({ signals: s0.signals + 1, armed: false, pending: 0n });
    expect(s1.lastSignalVblank).toBeGreaterThanOrEqual(s0.vblank);
    guest.flip('primary', OFF_B);
    const s2 = guest.displayIrq();
    if (s2.vblank === s1.lastSignalVblank) {
      // still the same period when read (after the write; the clock only goes forward, and the
      // state and the clock are read together under the IRQ's lock): held back for the boundary
      expect(s2).toMatchObject({ armed: true, pending: PRI, signals: s1.signals });
    }
    expect(waitRead(irq!, 10_000)).toBe(PRI);
    const s3 = guest.displayIrq();
    expect(s3).toMatchObject({ signals: s1.signals + 1, pending: 0n });
    expect(s3.lastSignalVblank).toBeGreaterThan(s1.lastSignalVblank);
  });

  it('plane disable, guest reset and VFIO_DEVICE_RESET signal (the display going away is an event)', async () => {
    await drain(irq!);
    guest.disable('cursor');
    expect(waitRead(irq!, 10_000)).toBe(CUR);
    guest.disable('primary'); // the guest's display is now off
    expect(waitRead(irq!, 10_000)).toBe(PRI);
    guest.disable('primary'); // already off: nothing changes, nothing signalled
    expect(waitRead(irq!, 400)).toBeNull();
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    expect(waitRead(irq!, 10_000)).toBe(PRI);
    guest.reset();
    expect(waitRead(irq!, 10_000)).toBe(PRI | CUR);
    // VFIO_DEVICE_RESET (as QEMU at machine reset): unmasks, keeps the eventfd, signals
    irq!.mask();
    expect(tool('irq-check', dev.fd, 'reset')).toEqual({ reset: 0 });
    expect(waitRead(irq!, 10_000)).toBe(PRI | CUR);
    expect(guest.displayIrq()).toMatchObject({ eventfd: true, masked: false });
  });

  it('a flood of guest flips is coalesced: at most one signal per guest vblank, counted in the eventfd', async () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    await drain(irq!);
    const N = 3000;
    const s0 = guest.displayIrq();
    const f0 = guest.flipCount();
    let viaEventfd = 0;
    let reads = 0;
    let undecodable = 0;
    const onReadable = (): void => {
      const d = irq!.read();
      if (!d) return;
      reads++;
      if (d.all || d.cursor) undecodable++;
      viaEventfd += d.primarySignals ?? 0;
    };
    const poller = native.pollReadable(irq!.fd, onReadable);
    try {
      const flip = path.join(guest.dir, 'primary', 'flip');
      const sh = spawn('sh', ['-c', `i=1; while [ $i -le ${N} ]; do echo $(( (i % 2) * ${OFF_B} )) > ${flip}; i=$((i+1)); done`], { stdio: 'ignore' });
      const code = await new Promise<number | null>((res) => sh.on('exit', res));
      expect(code).toBe(0);
      // let the last pending change reach its vblank, and the poller read it
      for (let i = 0; i < 200; i++) {
        const s = guest.displayIrq();
        if (!s.armed && s.pending === 0n && viaEventfd === s.signals - s0.signals) break;
        await sleep(25);
      }
    } finally {
      poller.stop();
    }
    onReadable();
    const s1 = guest.displayIrq();
    const flips = guest.flipCount() - f0;
    const signals = s1.signals - s0.signals;
    const vblanks = s1.lastSignalVblank - s0.vblank;
    expect(flips).toBe(N);
    expect(s1.events - s0.events).toBe(N);
    expect(signals).toBeGreaterThanOrEqual(1);
    // at most one signal per vblank period, from the start's period to the last signal's: the bound is structural
    expect(signals).toBeLessThanOrEqual(vblanks + 1);
    expect(signals).toBeLessThanOrEqual(s1.vblank - s0.vblank + 1);
    // coalescing happened: far fewer signals than flips
    expect(signals).toBeLessThan(flips);
    // the eventfd saw exactly those signals, all primary-only, decodable
    expect(viaEventfd).toBe(signals);
    expect(undecodable).toBe(0);
    expect(reads).toBeGreaterThanOrEqual(1);
    console.log(`display-irq flood: ${flips} flips, ${signals} signals over ${s1.vblank - s0.vblank} vblanks (${reads} reads)`);
  });
});

describe('vgpu-flip inspect', () => {
  it('shows which vGPUs offer the display event (EVENT column, display_event in JSON)', () => {
    const hl = createSimInstance('vgpu_sim-headless');
    try {
      // ours is held by this process (PROBE through a pidfd duplicate); the headless one is idle (--probe opens it)
      const r = inspectVgpus({ probe: 'all' });
      const mine = r.vgpus.find((v) => v.uuid === inst!.uuid)!;
      const other = r.vgpus.find((v) => v.uuid === hl.uuid)!;
      expect(mine.displayEvent).toEqual({ index: IDX, maskable: true, priEventVal: PRI, curEventVal: CUR });
      expect(other.displayEvent).toBe(false);
      expect(vgpuJson(mine)).toMatchObject({ display_event: { index: 5, maskable: true, primary_event_val: '0x100000000000000', cursor_event_val: '0x1000000000000' } });
      expect(vgpuJson(other)).toMatchObject({ display_event: false });
      const text = renderVgpus([mine, other]);
      expect(text).toMatch(/\bEVENT\b/);
      expect(text).toMatch(new RegExp(`${inst!.uuid}.*irq 5`));
      expect(text).toMatch(new RegExp(`${hl.uuid}.* no\\s*$`, 'm'));
      // not probed: not asked
      const np = inspectVgpus({ probe: 'none' }).vgpus.find((v) => v.uuid === inst!.uuid)!;
      expect(vgpuJson(np)).toMatchObject({ display_event: null });
    } finally {
      hl.remove();
    }
  });
});

describe('lifetime', () => {
  it('close of the device detaches the eventfd and unmasks; removal with an eventfd attached is clean', async () => {
    const other = createSimInstance('vgpu_sim-small');
    try {
      const d = VfioDevice.open(other.uuid);
      const g = new SimGuest(other.uuid);
      const q = DisplayIrq.attach(d)!;
      q.mask();
      g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
      expect(g.displayIrq()).toMatchObject({ eventfd: true, masked: true, pending: PRI });
      const efd = native.eventfdCreate();
      try {
        // a second reference on the eventfd held by the driver, then the device goes away
        native.vfioSetIrqs(d.fd, IDX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [efd]);
        d.close();
        expect(g.displayIrq()).toMatchObject({ eventfd: false, masked: false, pending: 0n, armed: false });
        g.flip('primary', OFF_B);
        expect(native.pollWait(efd, 300)).toBe(false);
        expect(g.displayIrq().pending).toBe(0n);
      } finally {
        native.close(efd);
        q.close(); // the device is closed: only closes its eventfd
      }
      // removal while open with an armed timer: vsim_remove stops it (dmesg is checked by the rig)
      const d2 = VfioDevice.open(other.uuid);
      const q2 = DisplayIrq.attach(d2)!;
      g.flip('primary', 0);
      const rm = spawn('sh', ['-c', `echo 1 > /sys/bus/mdev/devices/${other.uuid}/remove`], { stdio: 'ignore' });
      await sleep(300);
      q2.close();
      d2.close();
      expect(await new Promise<number | null>((res) => rm.on('exit', res))).toBe(0);
    } finally {
      other.remove();
    }
  });
});
