// The kiosk's systemd unit (configs/vgpu-flip-kiosk.service) checked by systemd itself:
// `systemd-analyze verify` parses it as systemd would at daemon-reload (unknown keys, bad values,
// a Type=notify unit without ExecStart, commands that are not executable). The unit names
// /usr/bin/vgpu-flip; the copy checked here names this checkout's bin/vgpu-flip.js instead, so the
// check can pass without installing. Needs systemd's tools (setup.sh installs them), not a running systemd.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const unit = path.join(root, 'configs', 'vgpu-flip-kiosk.service');
const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpu-flip-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the kiosk systemd unit', () => {
  it('passes systemd-analyze verify', () => {
    const text = readFileSync(unit, 'utf8');
    expect(text).toMatch(/^Type=notify$/m);
    expect(text).toMatch(/^WatchdogSec=/m);
    expect(text).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    const copy = path.join(dir, 'vgpu-flip-kiosk.service');
    writeFileSync(copy, text.replaceAll('/usr/bin/vgpu-flip ', `${path.join(root, 'bin', 'vgpu-flip.js')} `));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    if (r.error) throw new Error(`systemd-analyze cannot run (${r.error.message}): bash setup.sh installs systemd's tools`);
    // verify also walks the dependencies (libvirtd.service, systemd-udev-settle.service): a
    // machine without them only says so; anything about our unit is a failure
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('vgpu-flip-kiosk.service'));
    expect(ours).toEqual([]);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('a broken unit is caught (the check can fail)', () => {
    const bad = path.join(dir, 'vgpu-flip-kiosk-bad.service');
    writeFileSync(bad, readFileSync(unit, 'utf8').replace(/^Type=notify$/m, 'Type=notfy').replaceAll('/usr/bin/vgpu-flip ', '/nonexistent/vgpu-flip '));
    const r = spawnSync('systemd-analyze', ['verify', bad], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toMatch(/vgpu-flip-kiosk-bad\.service/);
  });
});
