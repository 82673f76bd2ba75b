// Run-dir hygiene of the assignment state files: created with O_EXCL|O_NOFOLLOW (a planted
// symlink is removed, its target untouched), read with O_NOFOLLOW, regular files of <= 1 MiB only.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRunDir, readAssignmentStates, writeExclusive } from '../../src/debugfs/assignment-state.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vgpu-flip-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('assignment state files in a shared run folder', () => {
  it('writeExclusive replaces a planted symlink instead of following it', () => {
    const victim = path.join(tmp, 'victim');
    writeFileSync(victim, 'precious\n');
    const f = path.join(tmp, '.123.json.tmp');
    symlinkSync(victim, f);
    writeExclusive(f, '{"x":1}\n');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(f).isSymbolicLink()).toBe(false);
    expect(readFileSync(f, 'utf8')).toBe('{"x":1}\n');
  });

  it('readers ignore symlinks, FIFOs and huge files, with the reason', () => {
    const dir = path.join(tmp, 'run');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'target.json'), '{}');
    symlinkSync(path.join(dir, 'target.json'), path.join(dir, '11.json'));
    execFileSync('mkfifo', [path.join(dir, '12.json')]);
    writeFileSync(path.join(dir, '13.json'), Buffer.alloc((1 << 20) + 1, 0x20));
    const r = readAssignmentStates(dir, { alive: () => true });
    expect(r.live).toEqual([]);
    expect(r.stale.map((s) => [path.basename(s.file), s.why])).toEqual([
      ['11.json', 'a symlink (ignored)'],
      ['12.json', 'not a regular file (ignored)'],
      ['13.json', 'larger than 1 MiB (ignored)'],
    ]);
  });

  it('a run folder that is a symlink or world-writable without the sticky bit is refused', () => {
    const real = path.join(tmp, 'realdir');
    mkdirSync(real);
    symlinkSync(real, path.join(tmp, 'linkdir'));
    expect(() => checkRunDir(path.join(tmp, 'linkdir'))).toThrow(`${tmp}/linkdir is a symlink`);
    chmodSync(real, 0o777);
    expect(() => checkRunDir(real)).toThrow(`${real} is writable by everyone without the sticky bit`);
    chmodSync(real, 0o1777);
    expect(() => checkRunDir(real)).not.toThrow();
  });
});
