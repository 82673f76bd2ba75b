#!/usr/bin/env node
// Host side of the rig's display read-back (test/rig/vm.sh --display2): the tests run inside the
// guest, but what a virtio-gpu head scans out is known only to the outer QEMU. This service talks
// QMP to that QEMU and runs `screendump` (device + head) when the guest asks through the job
// folder, which is the host's folder shared writable over 9p.
//
//   node test/rig/screendump-service.mjs --qmp SOCKET --dir JOB/screendump --device ID --heads N
//
// Protocol (all files in --dir; <id> is [A-Za-z0-9_.-]{1,80}):
//   guest:   <id>.req      JSON {"head": 0, "format": "ppm" | "png"} (write <id>.req.tmp, rename)
//   service: <id>.req is renamed to <id>.taken, then QMP screendump writes <id>.<format>, then
//            <id>.done     JSON {"file": "<id>.ppm", "format", "head", "ms"}      on success
//            <id>.error    one line of text saying what failed                       on failure
//            (result files are written as .tmp and renamed, so a reader never sees half of one)
//   service.json: {"state": "connecting" | "ready" | "error", "device", "heads", "qemu", "error"}
// One QMP connection, one command at a time, 30 s per command. The service exits when QEMU closes
// the socket (the VM is gone) or on SIGTERM (vm.sh kills it at VM exit).
import { readdirSync, readFileSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (/** @type {string} */ name, /** @type {string | undefined} */ dflt) => {
  const i = args.indexOf(name);
  if (i >= 0 && i + 1 < args.length) return /** @type {string} */ (args[i + 1]);
  if (dflt !== undefined) return dflt;
  console.error(`screendump-service: missing ${name}`);
  process.exit(2);
};
const sock = opt('--qmp');
const dir = opt('--dir');
const device = opt('--device');
const heads = Number(opt('--heads', '1'));
const CONNECT_MS = 60_000;
const COMMAND_MS = 30_000;
const log = (/** @type {string} */ s) => console.log(`${new Date().toISOString()} ${s}`);

/** write a file atomically (tmp + rename) */
function put(/** @type {string} */ name, /** @type {string} */ text) {
  const f = path.join(dir, name);
  writeFileSync(`${f}.tmp`, text);
  renameSync(`${f}.tmp`, f);
}
/** @type {{state: string, device: string, heads: number, qemu?: string, error?: string, pid: number}} */
const status = { state: 'connecting', device, heads, pid: process.pid };
const setStatus = (/** @type {Partial<typeof status>} */ s) => {
  Object.assign(status, s);
  put('service.json', `${JSON.stringify(status)}\n`);
};

// ------------------------------------------------------------------ QMP client
/** @type {net.Socket | undefined} */
let qmp;
let buf = '';
let nextId = 1;
/** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void, timer: NodeJS.Timeout}>} */
const pending = new Map();
/** @type {((msg: any) => void) | undefined} */
let onGreeting;

function onLine(/** @type {string} */ line) {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    log(`unparsable QMP line: ${line.slice(0, 200)}`);
    return;
  }
  if (msg.QMP) {
    onGreeting?.(msg);
    return;
  }
  if (msg.event) return;
  const p = pending.get(msg.id);
  if (!p) return;
  pending.delete(msg.id);
  clearTimeout(p.timer);
  if (msg.error) p.reject(new Error(`QMP ${msg.error.class}: ${msg.error.desc}`));
  else p.resolve(msg.return);
}

function command(/** @type {string} */ execute, /** @type {object | undefined} */ args) {
  return new Promise((resolve, reject) => {
    if (!qmp) return reject(new Error('QMP is not connected'));
    const id = nextId++;
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new Error(`QMP ${execute}: no answer within ${COMMAND_MS / 1000} s`));
    }, COMMAND_MS);
    pending.set(id, { resolve, reject, timer });
    qmp.write(`${JSON.stringify({ execute, ...(args ? { arguments: args } : {}), id })}\n`);
  });
}

/** @type {Promise<void> | undefined} */
let connecting;
/** connect (QEMU creates the socket when it starts: retry for limitMs); one attempt at a time */
function connect(limitMs = CONNECT_MS) {
  connecting ??= connectLoop(limitMs).finally(() => {
    connecting = undefined;
  });
  return connecting;
}
async function connectLoop(/** @type {number} */ limitMs) {
  const t0 = Date.now();
  for (;;) {
    try {
      await new Promise((resolve, reject) => {
        const s = net.createConnection(sock);
        s.setEncoding('utf8');
        const fail = (/** @type {Error} */ e) => {
          s.destroy();
          reject(e);
        };
        s.once('error', fail);
        onGreeting = (g) => {
          onGreeting = undefined;
          s.off('error', fail);
          qmp = s;
          s.on('error', (e) => log(`QMP socket error: ${e.message}`));
          s.on('close', () => {
            log('QMP socket closed (QEMU exited): stopping');
            process.exit(0);
          });
          const v = g.QMP?.version?.qemu;
          resolve(v ? `${v.major}.${v.minor}.${v.micro}` : 'unknown');
        };
        s.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            onLine(line);
          }
        });
      }).then(async (version) => {
        await command('qmp_capabilities');
        setStatus({ state: 'ready', qemu: String(version), error: undefined });
        log(`connected to QEMU ${version} at ${sock}; device ${device}, ${heads} head(s)`);
      });
      return;
    } catch (e) {
      if (Date.now() - t0 > limitMs) {
        const why = `cannot connect to QMP at ${sock} within ${limitMs / 1000} s: ${/** @type {Error} */ (e).message}`;
        setStatus({ state: 'error', error: why });
        throw new Error(why);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

// ------------------------------------------------------------------ requests
async function serve(/** @type {string} */ id) {
  const taken = path.join(dir, `${id}.taken`);
  renameSync(path.join(dir, `${id}.req`), taken);
  const t0 = Date.now();
  let head = -1;
  let format = 'ppm';
  try {
    const req = JSON.parse(readFileSync(taken, 'utf8'));
    head = req.head;
    format = req.format ?? 'ppm';
    if (!Number.isInteger(head) || head < 0 || head >= heads) throw new Error(`bad head ${JSON.stringify(req.head)}: the device has heads 0..${heads - 1}`);
    if (format !== 'ppm' && format !== 'png') throw new Error(`bad format ${JSON.stringify(format)}: ppm or png`);
    if (!qmp) await connect(5_000);
    const file = `${id}.${format}`;
    await command('screendump', { filename: path.join(dir, file), device, head, format });
    const ms = Date.now() - t0;
    put(`${id}.done`, `${JSON.stringify({ file, format, head, ms })}\n`);
    log(`${id}: head ${head} -> ${file} (${ms} ms)`);
  } catch (e) {
    const msg = `screendump of ${device} head ${head} failed: ${/** @type {Error} */ (e).message}`;
    put(`${id}.error`, `${msg}\n`);
    log(`${id}: ${msg}`);
  }
  rmSync(taken, { force: true });
}

let busy = false;
async function poll() {
  if (busy) return;
  busy = true;
  try {
    for (const n of readdirSync(dir)) {
      const m = /^([A-Za-z0-9_.-]{1,80})\.req$/.exec(n);
      if (m) await serve(/** @type {string} */ (m[1]));
    }
  } catch (e) {
    log(`poll: ${/** @type {Error} */ (e).message}`);
  } finally {
    busy = false;
  }
}

process.on('SIGTERM', () => process.exit(0));
setStatus({ state: 'connecting' });
setInterval(poll, 100);
connect().catch((e) => log(e.message));
