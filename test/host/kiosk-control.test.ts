// The kiosk's control socket on the host: the protocol both ways, the peer policy as pure logic,
// and a real UNIX socket served by ControlServer (peers faked where the policy is under test,
// the kernel's SO_PEERCRED where the addon is).
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, LineSplitter, parseRequest, parseResponse } from '../../src/kiosk/control-protocol.js';
import { checkPeer, resolveGroup, socketMode } from '../../src/kiosk/peer-policy.js';
import { ControlServer, kernelPeer, MAX_CONNECTIONS } from '../../src/kiosk/control-server.js';
import { ControlError, explainConnectError, request } from '../../src/kiosk/control-client.js';
import type { Peer } from '../../src/kiosk/peer-policy.js';

describe('control protocol', () => {
  it('parses the three requests', () => {
    expect(parseRequest('{"cmd":"status"}')).toEqual({ ok: true, value: { cmd: 'status' } });
    expect(parseRequest(' {"id":7,"cmd":"screenshot","output":"wall"} ')).toEqual({ ok: true, value: { id: 7, cmd: 'screenshot', output: 'wall' } });
    expect(parseRequest('{"cmd":"screenshot","method":"writeback"}')).toEqual({ ok: true, value: { cmd: 'screenshot', method: 'writeback' } });
    expect(parseRequest('{"cmd":"reload","id":"a"}')).toEqual({ ok: true, value: { cmd: 'reload', id: 'a' } });
  });

  it('says what is wrong with a bad request', () => {
    expect(parseRequest('')).toEqual({ ok: false, error: 'empty request line' });
    expect(parseRequest('status')).toMatchObject({ ok: false, error: expect.stringMatching(/^request is not JSON .*"status"/) });
    expect(parseRequest('[1]')).toMatchObject({ ok: false, error: expect.stringMatching(/a request is a JSON object/) });
    expect(parseRequest('{"cmd":"reboot"}')).toEqual({ ok: false, error: 'unknown command "reboot": the daemon knows status, screenshot, reload' });
    expect(parseRequest('{}')).toMatchObject({ ok: false, error: expect.stringMatching(/^unknown command null/) });
    expect(parseRequest('{"cmd":"status","force":true}')).toEqual({ ok: false, error: 'bad status request: request: unknown field force' });
    expect(parseRequest('{"cmd":"screenshot","output":3}')).toMatchObject({ ok: false, error: expect.stringMatching(/^bad screenshot request: "output": /) });
    expect(parseRequest('{"cmd":"screenshot","method":"crtc"}')).toEqual({ ok: false, error: 'bad screenshot request: "method": method must be auto, writeback, compose' });
  });

  it('checks replies: the answer to what was asked, or the daemon\'s error', () => {
    const s = '/run/x.sock';
    expect(parseResponse('{"ok":false,"error":"no"}', 'status', s)).toEqual({ ok: true, value: { ok: false, error: 'no' } });
    expect(parseResponse('{"ok":true,"cmd":"reload","applied":true,"message":"m","problems":[]}', 'reload', s)).toMatchObject({ ok: true });
    expect(parseResponse('HTTP/1.1 400', 'status', s)).toMatchObject({ ok: false, error: expect.stringMatching(/^the reply from \/run\/x.sock is not JSON .*is this a vgpu-flip kiosk control socket/) });
    expect(parseResponse('{"ok":true,"cmd":"reload","applied":true,"message":"m","problems":[]}', 'status', s)).toEqual({ ok: false, error: 'reply to reload from /run/x.sock while status was asked' });
    expect(parseResponse('{"ok":true,"cmd":"screenshot","output":"w","method":"compose","notes":[],"width":0,"height":1,"png":"x"}', 'screenshot', s)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^unexpected reply to screenshot from \/run\/x.sock: width: .*another version/),
    });
  });

  it('encodes one line, bigints as strings', () => {
    expect(encode({ ok: true, cmd: 'status', status: { id: 5n } })).toBe('{"ok":true,"cmd":"status","status":{"id":"5"}}\n');
  });

  it('splits lines across chunks and refuses an over-long one', () => {
    const s = new LineSplitter(10);
    expect(s.push('{"a"')).toEqual({ lines: [], tooLong: false });
    expect(s.push(':1}\n{"b":2}\n{')).toEqual({ lines: ['{"a":1}', '{"b":2}'], tooLong: false });
    expect(s.rest()).toBe('{');
    expect(s.push('x'.repeat(20)).tooLong).toBe(true);
    expect(s.rest()).toBe('');
  });
});

describe('peer policy', () => {
  const peer = (uid: number, gid: number, groups: number[] | null = []): Peer => ({ pid: 42, uid, gid, groups });
  it('lets root in, with or without a group', () => {
    expect(checkPeer(peer(0, 0), null)).toEqual({ allowed: true, why: 'root' });
    expect(checkPeer(peer(0, 5), 4242).allowed).toBe(true);
  });
  it('lets the group in by primary or supplementary group', () => {
    expect(checkPeer(peer(1000, 4242), 4242)).toEqual({ allowed: true, why: 'primary group 4242' });
    expect(checkPeer(peer(1000, 1000, [27, 4242]), 4242)).toEqual({ allowed: true, why: 'member of group 4242' });
  });
  it('refuses everyone else, saying why', () => {
    expect(checkPeer(peer(1000, 1000, [27]), 4242)).toEqual({ allowed: false, why: 'uid 1000 (groups 1000,27) is neither root nor in group 4242' });
    expect(checkPeer(peer(1000, 1000, null), 4242)).toEqual({ allowed: false, why: 'uid 1000 (supplementary groups unknown) is neither root nor in group 4242' });
    expect(checkPeer(peer(1000, 4242), null)).toEqual({ allowed: false, why: 'uid 1000 is not root, and no control.group is configured (root only)' });
  });
  it('resolves group names from the group file, numbers as they are', () => {
    const etc = 'root:x:0:\nkiosk-admins:x:1234:alice,bob\nbroken:x:\n';
    expect(resolveGroup('kiosk-admins', etc)).toBe(1234);
    expect(resolveGroup('77', '')).toBe(77);
    expect(() => resolveGroup('broken', etc)).toThrow(/no such group in \/etc\/group \(create it with `groupadd broken`, or give a numeric gid\)/);
    expect(() => resolveGroup('nope', etc)).toThrow(/control.group "nope": no such group/);
    expect(() => resolveGroup('99999999999', '')).toThrow(/not a valid gid/);
  });
  it('makes the socket group-writable only with a group', () => {
    expect(socketMode(null)).toBe(0o600);
    expect(socketMode(4242)).toBe(0o660);
  });
});

describe('ControlServer and the client over a real UNIX socket', () => {
  let dir = '';
  const servers: ControlServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const start = async (o: { gid?: number | null; peerOf?: (s: net.Socket) => Peer } = {}): Promise<string> => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-ctl-'));
    const socket = path.join(dir, 'sub', 'kiosk.sock');
    const srv = new ControlServer({
      socket,
      gid: o.gid ?? null,
      log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
      handle: async (r) => (r.cmd === 'reload' ? { ok: true, cmd: 'reload', applied: false, message: 'refused', problems: [] } : { ok: true, cmd: 'status', status: { hello: 1 } }),
      ...(o.peerOf ? { peerOf: o.peerOf } : {}),
    });
    await srv.listen();
    servers.push(srv);
    return socket;
  };

  it('serves root (the kernel\'s SO_PEERCRED through the addon) and answers in order', async () => {
    const socket = await start();
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(await request(socket, { cmd: 'status' })).toEqual({ ok: true, cmd: 'status', status: { hello: 1 } });
    // two requests on one connection: two answers, in order, ids echoed
    const lines = await new Promise<string[]>((resolve) => {
      const c = net.connect(socket);
      let got = '';
      c.on('data', (d) => {
        got += d.toString();
        if (got.split('\n').length > 3) {
          c.destroy();
          resolve(got.trim().split('\n'));
        }
      });
      c.write('{"id":1,"cmd":"reload"}\n{"id":2,"cmd":"status"}\nnonsense\n');
    });
    expect(lines.map((l) => JSON.parse(l) as { id?: number; ok: boolean })).toMatchObject([{ id: 1, ok: true }, { id: 2, ok: true }, { ok: false }]);
  });

  it('reads the real peer of a connection', async () => {
    let seen: Peer | null = null;
    const socket = await start({ peerOf: (s) => (seen = kernelPeer(s)) });
    await request(socket, { cmd: 'status' });
    expect(seen).toMatchObject({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(Array.isArray(seen!.groups)).toBe(true);
  });

  it('refuses a peer outside the group, logs its uid and pid, and tells the client', async () => {
    const socket = await start({ gid: 4242, peerOf: () => ({ pid: 999, uid: 1000, gid: 1000, groups: [] }) });
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    expect(statSync(socket).gid).toBe(4242);
    const r = await request(socket, { cmd: 'status' });
    expect(r).toEqual({ ok: false, error: 'permission denied: uid 1000 (groups 1000) is neither root nor in group 4242; the kiosk\'s control socket is for root and the group in control.group' });
    expect(logs.find((l) => l.fields?.['event'] === 'control-refused' && l.fields['uid'] === 1000)).toMatchObject({
      level: 'warn',
      msg: expect.stringMatching(/refused pid 999 uid 1000/),
      fields: { pid: 999, uid: 1000 },
    });
  });

  it('replaces a stale socket, refuses to take over a live one or a regular file', async () => {
    const socket = await start();
    const again = new ControlServer({ socket, gid: null, log: () => {}, handle: async () => ({ ok: false, error: 'x' }) });
    await expect(again.listen()).rejects.toThrow(/another daemon is listening there \(is vgpu-flip kiosk already running\?\)/);
    const file = path.join(dir, 'plain');
    writeFileSync(file, '');
    const onFile = new ControlServer({ socket: file, gid: null, log: () => {}, handle: async () => ({ ok: false, error: 'x' }) });
    await expect(onFile.listen()).rejects.toThrow(/exists and is not a socket; not removing it/);
  });

  it('serves at most MAX_CONNECTIONS at once', async () => {
    const socket = await start();
    const open = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => new Promise<net.Socket>((r) => {
      const c = net.connect(socket, () => r(c));
    })));
    try {
      const srv = servers.at(-1)!;
      for (let i = 0; srv.connectionCount < MAX_CONNECTIONS; i++) {
        if (i > 1000) throw new Error(`the server accepted ${srv.connectionCount} of ${MAX_CONNECTIONS}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      await expect(request(socket, { cmd: 'status' })).rejects.toThrow(/closed the connection|ECONNRESET/);
      expect(logs.some((l) => l.fields?.['event'] === 'control-busy')).toBe(true);
    } finally {
      for (const c of open) c.destroy();
    }
  });

  it('explains connection failures', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-ctl-'));
    const missing = path.join(dir, 'none.sock');
    const e = await request(missing, { cmd: 'status' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ControlError);
    expect((e as ControlError).message).toMatch(/^cannot connect to .*none.sock: ENOENT \(no such socket\): is the kiosk daemon running/);
    expect(explainConnectError('/s', Object.assign(new Error('x'), { code: 'EACCES' }))).toMatch(/EACCES \(permission denied\): the control socket is for root and the members/);
    expect(explainConnectError('/s', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toMatch(/nobody listens/);
  });

  it('reports a server that answers garbage or closes without answering', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-ctl-'));
    const socket = path.join(dir, 'bad.sock');
    const mode: { reply: string | null } = { reply: 'hello\n' };
    const srv = net.createServer((c) => {
      c.resume();
      if (mode.reply === null) c.end();
      else c.end(mode.reply);
    });
    await new Promise<void>((r) => srv.listen(socket, r));
    try {
      await expect(request(socket, { cmd: 'status' })).rejects.toThrow(/the reply from .*bad.sock is not JSON/);
      mode.reply = null;
      await expect(request(socket, { cmd: 'status' })).rejects.toThrow(/closed the connection without answering status/);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
