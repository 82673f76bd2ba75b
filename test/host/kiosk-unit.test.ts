// The shipped systemd unit matches what the daemon does: Type=notify with a watchdog, ExecStart
// runs `kiosk --run` with options the CLI has, ExecReload sends SIGHUP, the runtime directory of
// the control socket exists.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerKiosk } from '../../src/cli/commands/kiosk.js';
import { registerControl } from '../../src/cli/commands/control.js';

const unit = readFileSync(path.join(import.meta.dirname, '..', '..', 'configs', 'vgpu-flip-kiosk.service'), 'utf8');
const setting = (key: string): string | undefined => unit.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);

describe('configs/vgpu-flip-kiosk.service', () => {
  it('is Type=notify with a watchdog and the socket\'s runtime directory', () => {
    expect(setting('Type')).toBe('notify');
    expect(setting('NotifyAccess')).toBe('main');
    expect(setting('WatchdogSec')).toMatch(/^\d+s$/);
    expect(setting('RuntimeDirectory')).toBe('vgpu-flip');
    expect(setting('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
  });

  it('starts the daemon with options the CLI knows', () => {
    const exec = setting('ExecStart')!.split(/\s+/);
    expect(exec.slice(0, 3)).toEqual(['/usr/bin/vgpu-flip', 'kiosk', '--run']);
    const program = new Command();
    registerKiosk(program);
    registerControl(program);
    const kiosk = program.commands.find((c) => c.name() === 'kiosk')!;
    const known = new Set(kiosk.options.map((o) => o.long));
    for (const a of exec.slice(2).filter((x) => x.startsWith('--'))) expect(known, a).toContain(a);
    expect(program.commands.map((c) => c.name())).toEqual(expect.arrayContaining(['status', 'screenshot', 'reload']));
  });
});
