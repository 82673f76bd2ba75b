// `vgpu-flip kiosk --check FILE` against this machine, without touching the screen: every
// output's device opens, a connected connector matches it, a CRTC can drive it and its mode is
// offered; every VM's vGPU (or its VMM) is there, or can be created; and, where this process can
// become DRM master, each output's planes pass TEST_ONLY with framebuffers of the guest planes'
// sizes (from the vGPU's own answer when its group is free, else assumed: the mode's size for
// primary, 64x64 for the cursor, half the mode for an overlay). Problems make the check fail;
// warnings (a VM not running now: the daemon waits for it) and notes do not.
import { existsSync, readFileSync } from 'node:fs';
import { native } from '../binding/index.js';
import { describeKernelError } from '../binding/errors.js';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_MOD_LINEAR, DRM_FORMAT_XRGB8888, DRM_MODE_ATOMIC_ALLOW_MODESET } from '../binding/constants.js';
import { DrmDevice, type DumbFramebuffer } from '../kms/index.js';
import type { KmsSnapshot } from '../kms/types.js';
import { describeLayout, explainPlan, planLayouts, tryLayouts, type GuestPlaneKind, type GuestPlaneSpec } from '../flip/planner.js';
import { VfioDevice } from '../vfio/index.js';
import { describeLocator, locateVmm } from '../vfio/vmm.js';
import { describeHostdevs, LibvirtDomainError, readLibvirtDomain } from '../vfio/libvirt.js';
import { PLANE_PATH_FLAGS, DRM_PLANE_TYPES } from '../vfio/index.js';
import { connectorCandidates, crtcFor, matchOutputs, modeRequest } from './match.js';
import { layersOf, type KioskConfig, type OutputConfig, type VmConfig } from './model.js';

export interface MachineFinding {
  severity: 'problem' | 'warning' | 'note';
  output?: string;
  vm?: string;
  message: string;
}

export interface OutputVerdict {
  name: string;
  device: string;
  connector: string | null;
  crtc: number | null;
  mode: string | null;
  /** the hardware planes TEST_ONLY accepted, or why it was not tried */
  planes: string | null;
}

export interface MachineCheck {
  findings: MachineFinding[];
  outputs: OutputVerdict[];
  ok: boolean;
}

const DEFAULT_CARD = '/dev/dri/card0';

/** The guest plane sizes of a VM whose vGPU this process can open (its group is free), else null. */
function guestSizes(vm: VmConfig): Partial<Record<GuestPlaneKind, { width: number; height: number; format: number }>> | null {
  if (vm.source.kind !== 'mdev' || !existsSync(`/sys/bus/mdev/devices/${vm.source.uuid}`)) return null;
  let v: VfioDevice;
  try {
    v = VfioDevice.open(vm.source.uuid);
  } catch {
    return null; // held (by the daemon or a VMM): sizes are assumed
  }
  try {
    const out: Partial<Record<GuestPlaneKind, { width: number; height: number; format: number }>> = {};
    for (const kind of ['primary', 'cursor'] as const) {
      for (const path of ['dmabuf', 'region'] as const) {
        try {
          const q = native.vfioQueryGfxPlane(v.fd, PLANE_PATH_FLAGS[path], DRM_PLANE_TYPES[kind]);
          if (q.width > 0 && q.height > 0 && q.drmFormat !== 0) {
            out[kind] = { width: q.width, height: q.height, format: q.drmFormat };
            break;
          }
        } catch {
          /* this path is not offered */
        }
      }
    }
    return out;
  } finally {
    v.close();
  }
}

function checkVm(vm: VmConfig, add: (f: MachineFinding) => void): void {
  const s = vm.source;
  if (s.kind === 'mdev') {
    if (!existsSync(`/sys/bus/mdev/devices/${s.uuid}`)) add({ severity: 'warning', vm: vm.name, message: `vGPU ${s.uuid} does not exist now: the daemon shows the idle content until it does` });
  } else if (s.kind === 'create') {
    const dir = `/sys/class/mdev_bus/${s.parent}/mdev_supported_types/${s.type}`;
    if (!existsSync(dir)) add({ severity: 'problem', vm: vm.name, message: `cannot create ${s.type} on ${s.parent}: ${dir} does not exist (is the vendor driver loaded? \`vgpu-flip inspect\` lists the types)` });
    else {
      let avail = NaN;
      try {
        avail = Number(readFileSync(`${dir}/available_instances`, 'utf8').trim());
      } catch {
        /* unreadable: not checked */
      }
      if (avail === 0) add({ severity: 'problem', vm: vm.name, message: `cannot create ${s.type} on ${s.parent}: available_instances is 0` });
    }
  } else if (s.kind === 'domain') {
    // libvirt's runtime files: a domain not running (or starting, or stale files) is waited for; a broken file or a missing vGPU is a problem
    try {
      const d = readLibvirtDomain(s.domain, s.runDir);
      const has = `${d.xmlFile} has ${describeHostdevs(d.hostdevs)}`;
      if (s.vgpu && !d.mdevs.includes(s.vgpu)) add({ severity: 'problem', vm: vm.name, message: `vGPU ${s.vgpu} is not a vGPU of libvirt domain ${s.domain} (${has})` });
      else if (d.mdevs.length === 0) add({ severity: 'problem', vm: vm.name, message: `libvirt domain ${s.domain} has no vGPU (no <hostdev type='mdev' model='vfio-pci'>; ${has})` });
      else if (!s.vgpu && d.mdevs.length > 1) add({ severity: 'problem', vm: vm.name, message: `libvirt domain ${s.domain} has ${d.mdevs.length} vGPUs (${d.mdevs.join(', ')}): say which with vgpu:` });
    } catch (e) {
      const m = (e as Error).message.replace(/^--domain [^:]+: /, '');
      const waited = e instanceof LibvirtDomainError && e.kind !== 'invalid';
      add({ severity: waited ? 'warning' : 'problem', vm: vm.name, message: waited ? `${m}: the daemon waits for it` : `libvirt domain ${s.domain}: ${m}` });
    }
  } else {
    const loc = { kind: 'pid-file' as const, file: s.path };
    if (locateVmm(loc) === null) add({ severity: 'warning', vm: vm.name, message: `no VMM is running for ${describeLocator(loc)} now: the daemon waits for one` });
  }
}

/** TEST_ONLY one output's layers (DRM master held); returns the accepted layout, or a problem. */
function testOutput(dev: DrmDevice, snap: KmsSnapshot, o: OutputConfig, config: KioskConfig, crtcIndex: number, connectorId: number, mode: { w: number; h: number; info: import('../binding/types.js').ModeInfo }): { planes: string } | { problem: string } {
  const sizes = new Map(config.vms.map((vm) => [vm.name, guestSizes(vm)]));
  const specs: GuestPlaneSpec[] = layersOf(config, o.name).map((l) => {
    const known = sizes.get(l.vm)?.[l.plane];
    const assumed = l.plane === 'cursor' ? { width: 64, height: 64, format: DRM_FORMAT_ARGB8888 } : l.plane === 'overlay' ? { width: mode.w >> 1, height: mode.h >> 1, format: DRM_FORMAT_XRGB8888 } : { width: mode.w, height: mode.h, format: DRM_FORMAT_XRGB8888 };
    const g = known ?? assumed;
    const spec: GuestPlaneSpec = { kind: l.plane, layer: `${l.vm}/${l.plane}`, z: l.z, format: g.format, modifier: DRM_FORMAT_MOD_LINEAR, width: g.width, height: g.height };
    if (l.placement) spec.placement = l.placement;
    return spec;
  });
  if (specs.length === 0) return { planes: 'no layers' };
  const fbs = new Map<string, DumbFramebuffer>();
  const blob = dev.createModeBlob(mode.info);
  try {
    for (const sp of specs) fbs.set(sp.layer!, dev.createDumbFramebuffer(sp.width, sp.height, sp.format));
    const plan = planLayouts(snap, { crtcIndex, crtcWidth: mode.w, crtcHeight: mode.h, guests: specs });
    const crtc = snap.crtcs.find((c) => c.index === crtcIndex)!;
    const result = tryLayouts(plan.layouts, (layout) => {
      const req = dev.atomic();
      req.set(crtc.id, 'MODE_ID', blob.id).set(crtc.id, 'ACTIVE', 1).set(connectorId, 'CRTC_ID', crtc.id);
      for (const id of layout.disable) req.set(id, 'FB_ID', 0).set(id, 'CRTC_ID', 0);
      for (const a of layout.assignments) {
        req.placePlane(a.planeId, crtc.id, fbs.get(a.layer)!.fbId, { w: a.src.w, h: a.src.h }, a.dst);
        if (a.zpos !== undefined) req.setIfPresent(a.planeId, 'zpos', a.zpos);
      }
      return req.testOnly(DRM_MODE_ATOMIC_ALLOW_MODESET);
    });
    if (result.chosen) return { planes: describeLayout(result.chosen) };
    return { problem: `no hardware plane layout passes TEST_ONLY: ${explainPlan(plan, result).join(' | ')}` };
  } finally {
    for (const fb of fbs.values()) fb.destroy();
    blob.destroy();
  }
}

export function checkMachine(config: KioskConfig): MachineCheck {
  const findings: MachineFinding[] = [];
  const add = (f: MachineFinding): void => void findings.push(f);
  const outputs: OutputVerdict[] = [];
  const devices = new Map<string, { dev: DrmDevice; snap: KmsSnapshot; master: boolean } | null>();
  // leased outputs are the compositor's (checkLeases in lease-check.ts)
  const carded = config.outputs.filter((o) => !o.lease);
  try {
    for (const path of new Set(carded.map((o) => o.device ?? DEFAULT_CARD))) {
      let dev: DrmDevice;
      try {
        dev = DrmDevice.open(path);
      } catch (e) {
        devices.set(path, null);
        for (const o of carded.filter((x) => (x.device ?? DEFAULT_CARD) === path)) add({ severity: 'problem', output: o.name, message: `cannot open ${path}: ${describeKernelError(e)}` });
        continue;
      }
      let master = true;
      try {
        dev.setMaster();
      } catch {
        master = false;
      }
      devices.set(path, { dev, snap: dev.snapshot(), master });
      if (!master) add({ severity: 'note', message: `${path}: placements not tested (TEST_ONLY needs DRM master, which another process holds: the running daemon or a display server)` });
    }
    const candidates = [...devices.entries()].flatMap(([, d]) => (d ? connectorCandidates(d.snap, (id) => native.drmGetPropertyBlob(d.dev.fd, id)) : []));
    const { matched } = matchOutputs(carded, candidates, DEFAULT_CARD);
    const taken = new Map<string, Set<number>>();
    for (const o of carded) {
      const path = o.device ?? DEFAULT_CARD;
      const v: OutputVerdict = { name: o.name, device: path, connector: null, crtc: null, mode: null, planes: null };
      outputs.push(v);
      const d = devices.get(path);
      if (!d) continue;
      const c = matched.get(o.name);
      if (!c) {
        const connected = candidates.filter((x) => x.device === path).map((x) => x.connector.name);
        add({ severity: 'warning', output: o.name, message: `no connected connector of ${path} matches it now (connected: ${connected.join(', ') || 'none'}): its layers wait for one` });
        continue;
      }
      v.connector = c.connector.name;
      const t = taken.get(path) ?? new Set<number>();
      taken.set(path, t);
      const crtc = crtcFor(d.snap, c.connector, t);
      if (!crtc) {
        add({ severity: 'problem', output: o.name, message: `no free CRTC of ${path} can drive ${c.connector.name}` });
        continue;
      }
      t.add(crtc.id);
      v.crtc = crtc.index;
      const want = modeRequest(o, c.connector);
      const info = want ? c.connector.modes.find((m) => m.hdisplay === want.width && m.vdisplay === want.height && (want.refresh === undefined || m.vrefresh === want.refresh)) : crtc.mode;
      if (!info) {
        const offered = [...new Set(c.connector.modes.map((m) => `${m.hdisplay}x${m.vdisplay}@${m.vrefresh}`))].slice(0, 12).join(', ');
        add({ severity: 'problem', output: o.name, message: want ? `${c.connector.name} does not offer ${want.width}x${want.height}${want.refresh ? `@${want.refresh}` : ''} (it offers ${offered})` : `CRTC ${crtc.index} has no mode now (mode: current needs a lit CRTC; give a mode)` });
        continue;
      }
      v.mode = `${info.hdisplay}x${info.vdisplay}@${info.vrefresh}`;
      if (!d.master) continue;
      const r = testOutput(d.dev, d.snap, o, config, crtc.index, c.connector.id, { w: info.hdisplay, h: info.vdisplay, info });
      if ('problem' in r) add({ severity: 'problem', output: o.name, message: r.problem });
      else v.planes = r.planes;
    }
    for (const vm of config.vms) checkVm(vm, add);
  } finally {
    for (const d of devices.values()) d?.dev.close();
  }
  return { findings, outputs, ok: !findings.some((f) => f.severity === 'problem') };
}

export function renderMachineCheck(m: MachineCheck): string {
  const lines = m.outputs.map((o) => `  ${o.name}: ${o.connector ?? '(no connector)'} on ${o.device}${o.crtc !== null ? `, CRTC ${o.crtc}` : ''}${o.mode ? `, ${o.mode}` : ''}${o.planes ? `; TEST_ONLY: ${o.planes}` : ''}`);
  for (const f of m.findings) lines.push(`  ${f.severity}: ${f.output ? `output ${f.output}: ` : f.vm ? `vm ${f.vm}: ` : ''}${f.message}`);
  return `this machine:\n${lines.join('\n')}\n`;
}
