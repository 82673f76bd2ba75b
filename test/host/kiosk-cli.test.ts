// `vgpu-flip kiosk --check FILE [--schema-only] [--json]` (src/cli/commands/kiosk.ts): exit
// statuses 0 valid, 1 invalid, 2 usage, 3 valid but this machine does not fit it.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { registerKiosk, runKioskCheck } from '../../src/cli/commands/kiosk.js';

const root = path.resolve(import.meta.dirname, '../..');
const example = path.join(root, 'configs/kiosk-side-by-side.yaml');

async function run(opts: Parameters<typeof runKioskCheck>[0]) {
  let stdout = '';
  let stderr = '';
  const code = await runKioskCheck(opts, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

function tempFile(text: string): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'kiosk-cli-')), 'bad.yaml');
  writeFileSync(f, text);
  return f;
}

const BAD = 'version: 1\noutputs:\n  - { name: a, match: HDMI1, mode: big }\nvms:\n  - name: v\n    domain: v\n    planes: { primary: { output: b } }\n';

describe('vgpu-flip kiosk --check', () => {
  it('--schema-only on a valid file: the plan per output, exit 0', async () => {
    const r = await run({ check: example, schemaOnly: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe([
      'output wide: match DP-1 on /dev/dri/card0, mode 3440x1440@60, idle splash /usr/share/vgpu-flip/splash.png',
      '  z  vm     plane    placement  paths                 vm found by',
      '  0  left   primary  0,0        drm-fb,dmabuf,region  VMM of /run/qemu/left.pid',
      '  1  right  primary  1720,0     dmabuf,region         VMM of /run/qemu/right.pid (vGPU 6f1c9b76-2a55-4b1e-9d8e-0c4a1f6e2b31)',
      '  2  left   cursor   pointer    drm-fb,dmabuf,region  VMM of /run/qemu/left.pid',
      '  3  right  cursor   pointer    drm-fb,dmabuf,region  VMM of /run/qemu/right.pid (vGPU 6f1c9b76-2a55-4b1e-9d8e-0c4a1f6e2b31)',
      'control socket /run/vgpu-flip/kiosk.sock (root and group kiosk-admins); log text, level info',
      `${example}: valid (schema and cross-field checks; no device checked)`,
      '',
    ].join('\n'));
  });

  it('an invalid file: every problem with line:column on stderr, exit 1', async () => {
    const f = tempFile(BAD);
    const r = await run({ check: f, schemaOnly: true });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.map((l) => l.split(': ')[0])).toEqual([`${f}:3:23`, `${f}:3:36`, `${f}:7:34`, `${f}`]);
    expect(lines[3]).toBe(`${f}: invalid: 3 problems`);
  });

  it('--json: problems and plan for scripts', async () => {
    const bad = JSON.parse((await run({ check: tempFile(BAD), schemaOnly: true, json: true })).stdout);
    expect(bad.valid).toBe(false);
    expect(bad.exitStatus).toBe(1);
    expect(bad.plan).toBeNull();
    expect(bad.problems[2]).toEqual({ line: 7, column: 34, path: ['vms', 0, 'planes', 'primary', 'output'], message: 'unknown output "b" (the outputs are: a); name one of them or add an output named "b"', source: 'check' });
    const good = await run({ check: example, schemaOnly: true, json: true });
    const j = JSON.parse(good.stdout);
    expect([good.code, j.valid, j.deviceCheck, j.problems]).toEqual([0, true, 'skipped', []]);
    expect(j.plan.outputs[0].layers.map((l: { vm: string; plane: string }) => `${l.vm}/${l.plane}`)).toEqual(['left/primary', 'right/primary', 'left/cursor', 'right/cursor']);
  });

  it('without --schema-only on a machine without the devices: each output a problem naming the device, exit 3 (1 when invalid anyway)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kiosk-check-'));
    const cfg = path.join(dir, 'k.yaml');
    writeFileSync(cfg, ['version: 1', 'outputs:', '  - { name: wall, device: /dev/dri/card97, match: HDMI-A-1 }', 'vms:', '  - { name: a, mdev: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001, planes: { primary: { output: wall } } }', ''].join('\n'));
    const r = await run({ check: cfg });
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/problem: output wall: cannot open \/dev\/dri\/card97: .*ENOENT/);
    expect(r.stdout).toMatch(/warning: vm a: vGPU 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 does not exist now/);
    expect(r.stdout).toMatch(/this machine does not fit it: 1 problem\n$/);
    expect((await run({ check: tempFile(BAD) })).code).toBe(1);
    const j = JSON.parse((await run({ check: cfg, json: true })).stdout);
    expect([j.deviceCheck, j.exitStatus, j.machine.ok]).toEqual(['failed', 3, false]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('usage errors: no --check, an unreadable file: exit 2', async () => {
    const none = await run({});
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--check FILE/);
    const missing = await run({ check: '/nonexistent/kiosk.yaml', schemaOnly: true });
    expect(missing).toEqual({ code: 2, stdout: '', stderr: 'vgpu-flip kiosk: cannot read /nonexistent/kiosk.yaml: no such file\n' });
  });
});

describe('the kiosk command in the CLI', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  it('commander errors (an unknown option) exit with status 2', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
      throw new Error(`exit ${code}`);
    }) as never);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const program = new Command().name('vgpu-flip');
    registerKiosk(program);
    await expect(program.parseAsync(['node', 'vgpu-flip', 'kiosk', '--bogus'])).rejects.toThrow('exit 2');
    expect(exit).toHaveBeenCalledWith(2);
  });

  it('the action sets the exit status', async () => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const program = new Command().name('vgpu-flip');
    registerKiosk(program);
    await program.parseAsync(['node', 'vgpu-flip', 'kiosk', '--check', example, '--schema-only']);
    expect(process.exitCode).toBe(0);
  });
});
