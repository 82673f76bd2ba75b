// The other vGPUs of `assign --vgpu A --vgpu B@X,Y`: opened, probed and stacked as more guests
// on the session's output (src/present/compose.ts addGuest).
import { existsSync } from 'node:fs';
import { VfioDevice, isUuid, readVgpu } from '../vfio/index.js';
import { choosePath, simFlipCounter, UsageError, vendorDriverOf } from './session-checks.js';
import type { FlipEngine, GuestPlaneRequest } from './engine.js';
import { Guest, VfioGuestSource } from '../present/guest.js';
import { addGuest } from '../present/compose.js';
import type { GuestPlaneKind, Placement } from './planner.js';

/** Another vGPU on the same CRTC: its planes stack above the previous ones. */
export interface MoreVgpu {
  vgpu: string;
  placement?: Placement;
}

/** What of the assign options the other vGPUs use. */
export interface MoreVgpusOptions {
  vgpu?: string;
  moreVgpus?: MoreVgpu[];
  planes: GuestPlaneKind[];
  path?: 'drm_fb' | 'dmabuf' | 'region';
  cursorOrigin?: 'top-left' | 'hotspot';
  displayEvents?: boolean;
}

/**
 * The other vGPUs of `assign --vgpu A --vgpu B@X,Y`: each opened, its display path probed, its
 * planes added to the engine's output above the previous vGPU's. Returns the devices to close.
 */
export function addMoreVgpus(engine: FlipEngine, o: MoreVgpusOptions, Z: Record<GuestPlaneKind, number>, name: (uuid: string | null, i: number, kind: GuestPlaneKind) => string, checks: string[]): VfioDevice[] {
  const opened: VfioDevice[] = [];
  try {
    (o.moreVgpus ?? []).forEach((m, j) => {
      const i = j + 1;
      if (!isUuid(m.vgpu)) throw new UsageError(`--vgpu ${JSON.stringify(m.vgpu)} is not a UUID (list vGPUs with \`vgpu-flip inspect\`)`);
      if (m.vgpu === o.vgpu || o.moreVgpus!.slice(0, j).some((x) => x.vgpu === m.vgpu)) throw new UsageError(`--vgpu ${m.vgpu} is given twice`);
      const info = readVgpu(m.vgpu, {}, []);
      if (info.devicePath === null) throw new UsageError(`unknown vGPU ${m.vgpu}: ${info.sysfsPath} does not exist (list vGPUs with \`vgpu-flip inspect\`)`);
      const vf = VfioDevice.open(m.vgpu);
      opened.push(vf);
      const chosen = choosePath((p) => vf.probePath(p), o.path, undefined, vendorDriverOf(info.type));
      checks.push(`vGPU ${m.vgpu} (${info.type ?? 'unknown type'}) opened: ${chosen.check}`);
      const flipCount = simFlipCounter(m.vgpu);
      const guest = new Guest(new VfioGuestSource(vf, engine.display.api), {
        path: chosen.path,
        ...(flipCount ? { flipCount } : {}),
        gone: () => (existsSync(`/sys/bus/mdev/devices/${m.vgpu}`) ? null : `vGPU ${m.vgpu} was removed`),
        ...(o.displayEvents !== undefined ? { displayEvents: o.displayEvents } : {}),
      });
      const planes: GuestPlaneRequest[] = o.planes.map((kind) => {
        const r: GuestPlaneRequest = { kind, name: name(m.vgpu, i, kind), z: 3 * i + Z[kind] };
        if (m.placement && kind !== 'cursor') r.placement = m.placement;
        return r;
      });
      addGuest(engine, guest, planes, o.cursorOrigin ? { cursorOrigin: o.cursorOrigin } : {});
    });
  } catch (e) {
    for (const v of opened) v.close();
    throw e;
  }
  return opened;
}
