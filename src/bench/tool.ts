// The tool under test in the bench: one output on CRTC 0 with one guest's primary, built from
// the presentation core (src/present) as `assign` builds it, with the display event chosen
// explicitly (on or off), never left to the default. And a measuring window over its calls and
// this process's CPU time.
import { existsSync } from 'node:fs';
import type { DrmDevice } from '../kms/index.js';
import { CallCounter } from '../flip/counting.js';
import { simFlipCounter } from '../flip/session-checks.js';
import { Display } from '../present/display.js';
import { Guest, VfioGuestSource, type EnginePath, type GuestSource } from '../present/guest.js';
import { addGuest } from '../present/compose.js';
import type { Output } from '../present/output.js';
import type { GuestDriver } from './guest-driver.js';

export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ToolUnderTest {
  display: Display;
  out: Output;
  guest: Guest;
  counter: CallCounter;
  errors: string[];
  stop(): Promise<void>;
}

/**
 * Start presenting `g`'s primary on CRTC 0 through `path`; resolves once it is assigned.
 * vgpu-sim guests get what `assign --vgpu` gives them: the flip counter (DRM_FB) and the
 * instance's existence check.
 */
export async function startTool(dev: DrmDevice, g: GuestDriver, path: EnginePath, displayEvents: boolean): Promise<ToolUnderTest> {
  const counter = new CallCounter();
  const display = new Display(dev, { counter });
  const out = display.output({ crtcIndex: 0 });
  const uuid = g.kind === 'vgpu-sim' ? (g as { uuid?: string }).uuid : undefined;
  const flipCount = uuid && path === 'drm_fb' ? simFlipCounter(uuid) : null;
  const source: GuestSource = g.vfio ? new VfioGuestSource(g.vfio, display.api) : g.source!();
  const guest = new Guest(source, {
    path,
    displayEvents,
    ...(flipCount ? { flipCount } : {}),
    ...(uuid ? { gone: () => (existsSync(`/sys/bus/mdev/devices/${uuid}`) ? null : `vGPU ${uuid} was removed`) } : {}),
  });
  addGuest(out, guest, [{ kind: 'primary' }]);
  const errors: string[] = [];
  out.on('error', (e) => errors.push(`${e.stage}: ${e.message}`));
  const stop = (): Promise<void> => display.stop();
  try {
    out.start();
    const t0 = Date.now();
    while (!out.layout) {
      if (Date.now() - t0 > 20_000) throw new Error(`no assignment within 20 s: ${out.lastProblem} ${errors.join('; ')}`);
      await sleep(10);
    }
    if (displayEvents && !guest.events) throw new Error(`the display event was asked for but ${g.description} offers none`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { display, out, guest, counter, errors, stop };
}

export interface Measured {
  seconds: number;
  calls: Record<string, number>;
  ioctls: number;
  /** this process's CPU time (user + system) */
  cpuUs: number;
}

/** Start measuring; the function returned ends the window. */
export function measure(counter: CallCounter): () => Measured {
  const before = counter.snapshot();
  const cpu0 = process.cpuUsage();
  const t0 = nowUs();
  return () => {
    const calls = counter.since(before);
    const cpu = process.cpuUsage(cpu0);
    return { seconds: (nowUs() - t0) / 1e6, calls, ioctls: CallCounter.ioctls(calls), cpuUs: cpu.user + cpu.system };
  };
}

export const perSecond = (calls: Record<string, number>, seconds: number): Record<string, number> =>
  Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, Math.round((v / seconds) * 100) / 100]));
