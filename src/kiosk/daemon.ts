// The kiosk daemon's presentation part (issue 9): a validated configuration put on screen with
// the presentation core (src/present/): a Display per DRM device, an Output per configured
// output matched to a connector (src/kiosk/match.ts), each VM's vGPU as a Guest whose planes
// become layers of the outputs the configuration names, with their placement and z-order.
// The daemon watches master and hotplug per device (display-watch.ts). stop() restores every
// display as it was found and releases every kernel object; mdevs the daemon created are removed.
//
// While a VM is missing (not created yet, stopped, its mdev removed) its outputs show their idle
// placeholder (black, a colour or a PNG splash: placeholder.ts) and the daemon looks for its
// vGPU again every few seconds (a sysfs existence check, no ioctl); when it is back its layers
// are added again. A vGPU that goes away is released at once (the guest owns its VFIO device),
// so the kernel can finish removing it.
// VMs are found per source kind in vm-source.ts (mdev, create, a VMM's libvirt domain or pid
// file). SIGHUP applies a new configuration as a diff (apply(), diff.ts reloadScope).
import { existsSync, writeFileSync } from 'node:fs';
import { native } from '../binding/index.js';
import { describeKernelError } from '../binding/errors.js';
import { DrmDevice } from '../kms/index.js';
import { VfioDevice } from '../vfio/index.js';
import { Display } from '../present/display.js';
import { Guest, VfioGuestSource } from '../present/guest.js';
import { addGuest } from '../present/compose.js';
import type { Output } from '../present/output.js';
import { simFlipCounter } from '../flip/session-checks.js';
import { connectorCandidates, crtcFor, describeCandidates, matchOutputs, modeRequest, type ConnectorCandidate } from './match.js';
import { allLayers, type KioskConfig, type OutputConfig, type VmConfig } from './model.js';
import { closeScope, diffConfigs, diffSummary, reloadScope, sameValue } from './diff.js';
import { idleOf } from './splash.js';
import { acquireVm } from './vm-source.js';
import { chooseVmPath } from './vm-path.js';
import { LeasedOutputs } from './leased-outputs.js';
import type { LeaseStatus } from './lease-keeper.js';


export type LogFn = (level: 'error' | 'warn' | 'info' | 'debug', msg: string, fields?: Record<string, unknown>) => void;

export class KioskDaemon {
  private readonly devices = new Map<string, { dev: DrmDevice; display: Display }>();
  private readonly outputs = new Map<string, Output>();
  private readonly vfios: VfioDevice[] = [];
  private readonly created: string[] = [];
  /** VMs whose vGPU is not there (yet, or any more): looked for again every retryMs */
  /** nextAt/delayMs: attempts that fail the same way back off (2 s doubling to 30 s); said: logged once */
  private readonly waitingVms = new Map<string, { vm: VmConfig; said: string; delayMs: number; nextAt: number }>();
  private retryTimer: NodeJS.Timeout | null = null;
  private rescanning = false;
  /** how often a missing VM's vGPU is looked for (ms) */
  retryMs = 2000;
  /** the vGPU of each mdev/create VM (create: the one the daemon made, made once) */
  private readonly vmUuids = new Map<string, string>();
  /** by VFIO device label (a guest's label): its VM and what to release when it leaves */
  private readonly vmOf = new Map<string, { vm: string; release: () => void }>();

  /** outputs leased from the Wayland compositor (`lease:`): their keepers and lease displays */
  private readonly leased: LeasedOutputs;
  /** reloads, hotplugs and lease changes bring outputs up one after the other */
  private serial: Promise<unknown> = Promise.resolve();

  /** the configuration presented now (apply() replaces it) */
  config: KioskConfig;

  constructor(
    config: KioskConfig,
    private readonly log: LogFn,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.config = config;
    this.leased = new LeasedOutputs(log, (name, what) => this.leaseChanged(name, what), env);
  }

  /** what each leased output's lease is doing, by output name (status) */
  get leaseStatus(): ReadonlyMap<string, LeaseStatus> {
    return this.leased.statuses();
  }

  /** why each VM that is not shown is waiting, by VM name (status) */
  get vmWaiting(): ReadonlyMap<string, string> {
    return new Map([...this.waitingVms].map(([n, w]) => [n, w.said.replace(/^vm [^:]+: /, '')]));
  }

  /** The outputs presenting now, by configured name (for the control socket's status and screenshot). */
  get presenting(): ReadonlyMap<string, Output> {
    return this.outputs;
  }

  /** Bring every output and VM up. Throws (with everything already opened released) on a fatal problem. */
  start(): { outputs: string[]; waiting: string[]; vms: string[] } {
    try {
      return this.doStart();
    } catch (e) {
      void this.stop();
      throw e;
    }
  }

  private display(path: string): { dev: DrmDevice; display: Display } {
    let d = this.devices.get(path);
    if (d) return d;
    const dev = DrmDevice.open(path, { writeback: true });
    try {
      dev.setMaster();
    } catch (e) {
      dev.close();
      throw new Error(`cannot become DRM master of ${path} (${describeKernelError(e)}): another process (a display server?) owns the display`);
    }
    d = { dev, display: new Display(dev) };
    const w = d.display.watchDevice({ hotplug: true });
    w.on('output', (x) => this.log('info', `output on CRTC ${x.crtcIndex}: ${x.action} (${x.why})`, { event: 'output', ...x }));
    w.on('master', (e) => this.log(e.type === 'lost' ? 'warn' : 'info', e.type === 'lost' ? `${path}: DRM master lost (${e.code}): its outputs paused until it is free again` : `${path}: DRM master regained after ${Math.round(e.lostForMs)} ms (${e.attempts} SET_MASTER attempts): outputs planned again`, { event: 'master', device: path, ...e }));
    w.on('topology', () => void this.hotplugged().catch((e) => this.log('error', `hotplug: ${(e as Error).message}`, { event: 'hotplug' })));
    this.devices.set(path, d);
    return d;
  }

  private doStart(): { outputs: string[]; waiting: string[]; vms: string[] } {
    return this.bringUp(null, null);
  }

  /**
   * Bring up the outputs named (null: all) and the VMs named (null: all) of this.config: each
   * output matched to a connector gets a free CRTC (kept outputs keep theirs) and its mode.
   */
  private bringUp(outNames: ReadonlySet<string> | null, vmNames: ReadonlySet<string> | null): { outputs: string[]; waiting: string[]; vms: string[] } {
    const carded = this.config.outputs.filter((o) => !o.lease);
    const paths = [...new Set(carded.filter((o) => !outNames || outNames.has(o.name)).map((o) => o.device ?? '/dev/dri/card0'))];
    const candidates: ConnectorCandidate[] = [];
    for (const p of paths) {
      const { dev, display } = this.display(p);
      candidates.push(...connectorCandidates(outNames ? display.refresh() : display.snapshot, (id) => native.drmGetPropertyBlob(dev.fd, id)));
    }
    const { matched, unmatched } = matchOutputs(carded, candidates, '/dev/dri/card0');
    const taken = new Map<string, Set<number>>();
    for (const [path, { display }] of this.devices) taken.set(path, new Set(display.outputs.map((o) => o.crtcId)));
    const started: Output[] = [];
    for (const o of this.config.outputs) {
      if (outNames && !outNames.has(o.name)) continue;
      if (o.lease) {
        const l = this.leased.display(o);
        if (!l) {
          unmatched.push(o.name);
          continue;
        }
        const mode = modeRequest(o, l.connector);
        const out = l.display.output({ crtcIndex: l.crtc.index, ...(mode ? { mode } : {}), ...idleOf(o, this.log) });
        this.watchOutput(o.name, out);
        this.outputs.set(o.name, out);
        started.push(out);
        this.log('info', `output ${o.name}: ${l.connector.name} leased (${l.held.drmNode ?? '?'}), CRTC ${l.crtc.index}${mode ? `, ${mode.width}x${mode.height}${mode.refresh ? `@${mode.refresh}` : ''}` : ''}`, { output: o.name, connector: l.connector.name, crtc: l.crtc.index, lease: true });
        continue;
      }
      const c = matched.get(o.name);
      if (!c) {
        this.log('warn', `output ${o.name}: no matching connected monitor; its layers wait (${describeCandidates(candidates, o.device ?? '/dev/dri/card0', matched)})`, { output: o.name });
        continue;
      }
      const { display } = this.display(c.device);
      const t = taken.get(c.device) ?? new Set<number>();
      taken.set(c.device, t);
      const crtc = crtcFor(display.snapshot, c.connector, t);
      if (!crtc) {
        this.log('error', `output ${o.name}: no free CRTC can drive ${c.connector.name} on ${c.device}`, { output: o.name });
        continue;
      }
      t.add(crtc.id);
      const mode = modeRequest(o, c.connector);
      const out = display.output({ crtcIndex: crtc.index, ...(mode ? { mode } : {}), ...idleOf(o, this.log) });
      this.watchOutput(o.name, out);
      this.outputs.set(o.name, out);
      started.push(out);
      this.log('info', `output ${o.name}: ${c.connector.name} on ${c.device}, CRTC ${crtc.index}${mode ? `, ${mode.width}x${mode.height}${mode.refresh ? `@${mode.refresh}` : ''}` : ''}`, { output: o.name, connector: c.connector.name, crtc: crtc.index });
    }
    const vms: string[] = [];
    for (const vm of this.config.vms) {
      if (vmNames && !vmNames.has(vm.name)) continue;
      if (this.startVm(vm)) vms.push(vm.name);
    }
    for (const [name, out] of this.outputs) {
      if (!started.includes(out)) continue;
      if (out.layers.length === 0) this.log('warn', `output ${name}: no VM on screen yet; showing its idle placeholder`, { output: name });
      out.start();
    }
    this.scheduleRetry();
    return { outputs: [...this.outputs.keys()], waiting: unmatched, vms };
  }

  /**
   * Apply a new (valid) configuration as a diff (diff.ts reloadScope): outputs and VMs it does
   * not touch keep presenting without a missed frame; the others are stopped (their display
   * state restored, their vGPUs released, mdevs the daemon created for removed VMs removed)
   * and brought up from the new configuration.
   */
  async apply(next: KioskConfig): Promise<{ outputs: string[]; waiting: string[]; vms: string[]; summary: string; kept: string[] }> {
    const d = diffConfigs(this.config, next);
    const scope = reloadScope(this.config, next, d);
    const r = await this.serialize(() => this.redo(scope, next));
    const kept = [...this.outputs.keys()].filter((n) => !scope.outputs.has(n));
    return { ...r, summary: diffSummary(d), kept };
  }

  /** Stop the outputs and VMs of `scope` (restored, released) and bring them up from `next`. */
  private async redo(scope: { outputs: Set<string>; vms: Set<string> }, next: KioskConfig): Promise<{ outputs: string[]; waiting: string[]; vms: string[] }> {
    for (const name of scope.outputs) {
      const out = this.outputs.get(name);
      if (!out) continue;
      this.outputs.delete(name);
      await out.stop();
    }
    this.leased.prune(next.outputs);
    for (const name of scope.vms) {
      this.waitingVms.delete(name);
      for (const [label, of] of this.vmOf) {
        if (of.vm !== name) continue;
        of.release();
        this.vmOf.delete(label);
      }
      for (let i = this.vfios.length - 1; i >= 0; i--) if (this.vfios[i]!.closed) this.vfios.splice(i, 1);
      const uuid = this.vmUuids.get(name);
      if (!uuid) continue;
      this.vmUuids.delete(name);
      const v = this.vfios.findIndex((x) => x.uuid === uuid);
      if (v >= 0) this.vfios.splice(v, 1)[0]!.close();
      const created = this.created.indexOf(uuid);
      const stays = next.vms.find((x) => x.name === name && sameValue(x.source, this.config.vms.find((y) => y.name === name)?.source));
      if (created >= 0 && !stays) {
        this.created.splice(created, 1);
        this.removeMdev(uuid);
      } else if (stays) this.vmUuids.set(name, uuid); // the same vGPU: opened again, never created twice
    }
    this.config = next;
    return this.bringUp(scope.outputs, scope.vms);
  }

  /**
   * A connector changed (hotplug): configured outputs that are not presenting (no monitor matched
   * them yet) are brought up when one matches now, with the VMs they show (and what those share).
   */
  private async hotplugged(): Promise<void> {
    if (this.rescanning) return;
    this.rescanning = true;
    try {
      const carded = this.config.outputs.filter((o) => !o.lease);
      const missing = carded.filter((o) => !this.outputs.has(o.name)).map((o) => o.name);
      if (missing.length === 0) return;
      const candidates: ConnectorCandidate[] = [];
      for (const { dev, display } of this.devices.values()) candidates.push(...connectorCandidates(display.refresh(), (id) => native.drmGetPropertyBlob(dev.fd, id)));
      const { matched } = matchOutputs(carded, candidates, '/dev/dri/card0');
      const now = missing.filter((n) => matched.has(n));
      if (now.length === 0) return;
      this.log('info', `hotplug: ${now.map((n) => `output ${n} -> ${matched.get(n)!.connector.name}`).join(', ')}: bringing ${now.length === 1 ? 'it' : 'them'} up`, { event: 'hotplug', outputs: now });
      const outputs = new Set(now);
      const vms = new Set<string>();
      closeScope(allLayers(this.config), outputs, vms);
      await this.serialize(() => this.redo({ outputs, vms }, this.config));
    } finally {
      this.rescanning = false;
    }
  }

  private watchOutput(name: string, out: Output): void {
    out.on('assigned', (e) => this.log('info', `output ${name}: assigned (${e.reason})`, { output: name, event: 'assigned', explanation: e.explanation, paths: e.paths }));
    out.on('error', (e) => this.log(e.fatal ? 'error' : 'warn', `output ${name}: ${e.layer ?? e.plane ?? ''} ${e.stage}: ${e.message}`, { output: name, event: 'error', ...e }));
    out.on('not-ready', (e) => this.log('info', `output ${name}: ${e.layer ?? e.plane} not ready (${e.action})`, { output: name, event: 'not-ready', ...e }));
    out.on('fallback', (e) => this.log('warn', `output ${name}: ${e.layer ?? e.plane} ${e.from} -> ${e.to}: ${e.reason}`, { output: name, event: 'fallback', ...e }));
    out.on('guest-left', (e) => {
      const of = this.vmOf.get(e.guest);
      const vm = of ? this.config.vms.find((v) => v.name === of.vm) : undefined;
      this.log('warn', `output ${name}: ${e.why}${e.empty ? '; showing its idle placeholder' : ''}`, { output: name, event: 'guest-left', ...e });
      if (!vm || !of) return;
      of.release();
      this.vmOf.delete(e.guest);
      this.waitFor(vm, `vm ${vm.name}: gone (${e.why}); waiting for it to come back`);
    });
  }

  /**
   * A lease was granted: bring its output up with the VMs it shows (and what they share). Ended:
   * its output stops at once (the lease fd is closed already: nothing is restored) and its VMs
   * are brought up again on their other outputs.
   */
  private leaseChanged(name: string, what: 'granted' | 'ended'): void {
    if (what === 'ended') {
      const out = this.outputs.get(name);
      this.outputs.delete(name);
      void out?.stop();
    }
    const outputs = new Set([name]);
    const vms = new Set<string>();
    closeScope(allLayers(this.config), outputs, vms);
    this.serialize(() => this.redo({ outputs, vms }, this.config)).catch((e) => this.log('error', `output ${name}: ${(e as Error).message}`, { output: name }));
  }

  private serialize<T>(f: () => Promise<T>): Promise<T> {
    const p = this.serial.then(f, f);
    this.serial = p.catch(() => undefined);
    return p;
  }

  /** Look for a missing VM's vGPU again later; `said` is logged once per state. */
  private waitFor(vm: VmConfig, said: string, level: 'info' | 'error' = 'info'): void {
    const w = this.waitingVms.get(vm.name);
    if (w?.said !== said) this.log(level, said, { vm: vm.name, event: 'vm-waiting' });
    const delayMs = w?.said === said ? Math.min(30_000, w.delayMs * 2) : this.retryMs;
    this.waitingVms.set(vm.name, { vm, said, delayMs, nextAt: Date.now() + delayMs });
    for (const [label, of] of this.vmOf) if (of.vm === vm.name) this.vmOf.delete(label);
    for (let i = this.vfios.length - 1; i >= 0; i--) if (this.vfios[i]!.closed) this.vfios.splice(i, 1); // closed by their guests
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.waitingVms.size === 0 || this.outputs.size === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      for (const [name, { vm, nextAt }] of [...this.waitingVms]) {
        const uuid = this.vmUuids.get(name);
        if (uuid && !existsSync(`/sys/bus/mdev/devices/${uuid}`)) continue; // still missing (a sysfs check, no kernel call)
        if (Date.now() < nextAt) continue; // the last attempt failed: backing off
        if (!this.startVm(vm)) continue; // startVm said why (once) and set the next attempt
        this.waitingVms.delete(name);
        this.log('info', `vm ${vm.name}: its vGPU is back; its layers are planned on the next frame`, { vm: vm.name, event: 'vm-back' });
      }
      this.scheduleRetry();
    }, this.retryMs);
  }

  /** The VM's vGPU (vm-source.ts), its display path, its layers on their outputs. */
  private startVm(vm: VmConfig): boolean {
    const layers = vm.layers.filter((l) => this.outputs.has(l.output));
    if (layers.length === 0) {
      this.log('warn', `vm ${vm.name}: none of its outputs is connected; not opened`, { vm: vm.name });
      return false;
    }
    const a = acquireVm(vm, this.vmUuids.get(vm.name), (u) => {
      this.created.push(u);
      this.vmUuids.set(vm.name, u);
    });
    if (a.kind === 'wait') {
      this.waitFor(vm, a.why);
      return false;
    }
    if (a.kind === 'error') {
      this.waitFor(vm, `${a.why}; trying again with backoff`, 'error');
      return false;
    }
    const { vfio, uuid, describe } = a.got;
    if (uuid && (vm.source.kind === 'mdev' || vm.source.kind === 'create')) this.vmUuids.set(vm.name, uuid);
    const { path, skipped } = chooseVmPath(vfio, uuid, layers[0]!.paths, [...new Set(layers.map((l) => this.outputs.get(l.output)!.display.dev.path))]);
    const passed = skipped.length ? ` (passed over: ${skipped.join('; ')})` : '';
    if (!path) {
      a.got.release();
      vfio.close();
      this.log('error', `vm ${vm.name}: ${describe} supports none of the display paths ${layers[0]!.paths.join(', ')}${passed}`, { vm: vm.name });
      return false;
    }
    this.vfios.push(vfio);
    this.vmOf.set(vfio.label, { vm: vm.name, release: a.got.release });
    const flipCount = uuid ? simFlipCounter(uuid) : null;
    const api = (this.devices.values().next().value?.display ?? this.leased.displays()[0])!.api;
    const guest = new Guest(new VfioGuestSource(vfio, api, { owned: true }), {
      path,
      ...(flipCount ? { flipCount } : {}),
      gone: a.got.gone,
    });
    for (const outName of new Set(layers.map((l) => l.output))) {
      const out = this.outputs.get(outName)!;
      addGuest(
        out,
        guest,
        layers.filter((l) => l.output === outName).map((l) => ({ kind: l.plane, name: `${vm.name}/${l.plane}`, z: l.z, ...(l.placement ? { placement: l.placement } : {}) })),
      );
    }
    this.log('info', `vm ${vm.name}: ${describe}, ${path.replace('_', '-')} path${passed}, layers ${layers.map((l) => `${l.plane}->${l.output}`).join(', ')}`, { vm: vm.name, vgpu: uuid, path });
    return true;
  }

  /** Restore every display, release every kernel object, remove created mdevs. Idempotent. */
  async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.waitingVms.clear();
    for (const of of this.vmOf.values()) of.release();
    this.vmOf.clear();
    // leased outputs are stopped like the others (their CRTC restored as the lease was found)
    for (const display of [...[...this.devices.values()].map((d) => d.display), ...this.leased.displays()]) await display.stop();
    for (const v of this.vfios.splice(0)) if (!v.closed) v.close();
    for (const { dev } of this.devices.values()) dev.close();
    this.leased.releaseAll(); // lease fds closed, leases handed back
    this.devices.clear();
    this.outputs.clear();
    for (const u of this.created.splice(0)) this.removeMdev(u);
  }

  private removeMdev(u: string): void {
    try {
      writeFileSync(`/sys/bus/mdev/devices/${u}/remove`, '1');
    } catch (e) {
      this.log('warn', `removing mdev ${u} failed: ${(e as Error).message}`);
    }
  }
}
