// The two-monitor example (configs/kiosk-two-monitors.yaml, issue 9) on the rig's second display,
// in its rig variant test/rig/kiosk-two-monitors.yaml (which says what differs and why): one VM
// per head, both matched by connector name (head 1 has no EDID in the rig: checked first); default
// display paths (drm-fb, dmabuf, region: vgpu-sim's DRM_FB belongs to vkms, not to this card).
// Both guests on their heads (QEMU screendump); the right output keeps the last frame when its
// guest turns its display off (keep-last-frame); SIGTERM exits 0. Fails in CI without the display.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { DrmDevice } from '../../src/kms/index.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { connectorCandidates } from '../../src/kiosk/match.js';
import { loadConfigFile } from '../../src/kiosk/load.js';
import { request } from '../../src/kiosk/control-client.js';
import type { StatusReport } from '../../src/kiosk/status.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { display2Card, display2CardOrUndefined } from './display2-helpers.js';
import { headShows, runDaemon, until } from './kiosk-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;
const FILE = path.join(import.meta.dirname, '..', 'rig', 'kiosk-two-monitors.yaml');

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('the two-monitor example on the second display', () => {
  const insts: SimInstance[] = [];
  let dir = '';

  afterAll(() => {
    for (const i of insts) if (existsSync(`/sys/bus/mdev/devices/${i.uuid}`)) i.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('one VM per head, keep-last-frame, SIGTERM', async () => {
    expect(display2Card(), 'the rig variant names /dev/dri/card1').toBe('/dev/dri/card1');
    const loaded = loadConfigFile(FILE);
    if (!loaded.ok) throw new Error(`${FILE}: ${JSON.stringify(loaded.problems)}`);
    // what the heads are now: connected; only head 0 carries an EDID (why the right output matches by name)
    const dev = DrmDevice.open(display2Card());
    let heads: string[];
    try {
      heads = connectorCandidates(dev.snapshot(), (id) => native.drmGetPropertyBlob(dev.fd, id)).map((c) => `${c.connector.name} ${c.edid?.description ?? c.edidError ?? '(no EDID)'}`);
    } finally {
      dev.close();
    }
    expect(heads, 'the connected heads and their EDID identities').toEqual(['Virtual-2 RHT QEMU Monitor Unknown', 'Virtual-3 (no EDID)']);
    const uuids = loaded.config.vms.map((v) => (v.source.kind === 'mdev' ? v.source.uuid : ''));
    expect(loaded.config.vms.map((v) => v.name)).toEqual(['office', 'signage']);
    for (const [i, u] of uuids.entries()) {
      const inst = createSimInstance('vgpu_sim-small', u);
      insts.push(inst);
      const g = new SimGuest(inst.uuid);
      g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
      g.writePixels(0, drawPattern(W, H, 51 + i));
      g.flip('primary', 0);
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-2mon-'));
    const sock = path.join(dir, 'kiosk.sock');
    const d = runDaemon(FILE, { args: ['--control-socket', sock] });
    try {
      await headShows(0, 'office (pattern 51) on the left head', (x, y) => patternPixel(x, y, W, H, 51) & 0xffffff, W, H);
      await headShows(1, 'signage (pattern 52) on the right head', (x, y) => patternPixel(x, y, W, H, 52) & 0xffffff, W, H);
      const r = await request(sock, { cmd: 'status' });
      if (!r.ok || r.cmd !== 'status') throw new Error(JSON.stringify(r));
      const s = r.status as StatusReport;
      expect(s.outputs.map((o) => [o.name, o.connector, o.state])).toEqual([['left', 'Virtual-2', 'presenting'], ['right', 'Virtual-3', 'presenting']]);
      expect(s.outputs[0]!.layers.map((l) => l.name)).toEqual(['office/primary', 'office/cursor']);
      // keep-last-frame: the signage guest turns its display off, its last frame stays
      new SimGuest(uuids[1]!).disable('primary');
      await until(() => d.events().some((e) => e.event === 'not-ready' && e.output === 'right'), 60_000, () => `the right output's not-ready line (log: ${d.log()})`);
      await headShows(1, 'signage\'s last frame (pattern 52) while it is off', (x, y) => patternPixel(x, y, W, H, 52) & 0xffffff, W, H);
      d.p.kill('SIGTERM');
      expect(await d.exited, d.log()).toBe(0);
    } finally {
      if (d.p.exitCode === null) d.p.kill('SIGKILL');
    }
  }, 400_000);
});
