// The kiosk's control socket (issue 9): a UNIX stream socket (default /run/vgpu-flip/kiosk.sock),
// mode 0660 and owned by control.group (0600, root only, without a group). Every connection's
// peer is checked by its kernel credentials (peer-policy.ts) before a byte is read; a refused
// peer gets one ok:false line and is logged with its uid and pid. Requests are line-delimited
// JSON (control-protocol.ts), answered one at a time per connection, in order.
import net from 'node:net';
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { describeKernelError } from '../binding/errors.js';
import { socketFd, sockNative, type PeerCred } from '../binding/sockcred.js';
import { encode, LineSplitter, MAX_REQUEST_BYTES, parseRequest, type Request, type Response } from './control-protocol.js';
import { checkPeer, socketMode, type Peer } from './peer-policy.js';
import type { LogFn } from './daemon.js';

/** connections served at once (a client holding many open cannot starve the daemon of fds) */
export const MAX_CONNECTIONS = 32;

export type Handler = (req: Request) => Promise<Response>;

export interface ControlServerOptions {
  socket: string;
  /** the group allowed besides root, resolved (null: root only) */
  gid: number | null;
  log: LogFn;
  handle: Handler;
  /** the peer of a connection (default: SO_PEERCRED + SO_PEERGROUPS through the addon) */
  peerOf?: (sock: net.Socket) => Peer;
  /** a connection idle this long is closed (ms, default 60 s) */
  idleMs?: number;
}

export function kernelPeer(sock: net.Socket): Peer {
  const fd = socketFd(sock);
  const c: PeerCred = sockNative.socketPeerCred(fd);
  let groups: number[] | null;
  try {
    groups = sockNative.socketPeerGroups(fd);
  } catch {
    groups = null;
  }
  return { ...c, groups };
}

/** Is something answering on this socket path? (false: nobody listens, a stale file) */
function answers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();

  constructor(private readonly o: ControlServerOptions) {}

  get path(): string {
    return this.o.socket;
  }

  /** connections open now */
  get connectionCount(): number {
    return this.conns.size;
  }

  /**
   * Create the socket: its directory (0755) if missing, a stale socket of a dead daemon
   * removed, bound with umask 0177, then group and mode set. Throws naming the path and what to do.
   */
  async listen(): Promise<void> {
    const p = this.o.socket;
    const dir = path.dirname(p);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new Error(`control socket ${p}: cannot create its directory ${dir} (${describeKernelError(e)})`);
    }
    let st: ReturnType<typeof lstatSync> | null = null;
    try {
      st = lstatSync(p);
    } catch {
      st = null;
    }
    if (st) {
      if (!st.isSocket()) throw new Error(`control socket ${p}: the path exists and is not a socket; not removing it (choose another control.socket)`);
      if (await answers(p)) throw new Error(`control socket ${p}: another daemon is listening there (is vgpu-flip kiosk already running?)`);
      unlinkSync(p);
    }
    const server = net.createServer((s) => this.onConnection(s));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // the socket file is created by bind(), synchronously inside listen(): 0600 from the start,
        // and the umask is the process's own again before anything else runs
        const old = process.umask(0o177);
        try {
          server.listen(p, () => {
            server.off('error', reject);
            resolve();
          });
        } finally {
          process.umask(old);
        }
      });
    } catch (e) {
      throw new Error(`control socket ${p}: cannot listen (${describeKernelError(e)})`);
    }
    this.server = server;
    try {
      if (this.o.gid !== null) chownSync(p, -1, this.o.gid);
      chmodSync(p, socketMode(this.o.gid));
    } catch (e) {
      await this.close();
      throw new Error(`control socket ${p}: cannot give it group ${this.o.gid} and mode ${socketMode(this.o.gid).toString(8)} (${describeKernelError(e)})`);
    }
    server.on('error', (e) => this.o.log('error', `control socket ${p}: ${e.message}`, { event: 'control-error' }));
  }

  private onConnection(s: net.Socket): void {
    const sockPath = this.o.socket;
    if (this.conns.size >= MAX_CONNECTIONS) {
      this.o.log('warn', `control socket ${sockPath}: ${MAX_CONNECTIONS} connections open already; one more refused`, { event: 'control-busy' });
      s.destroy();
      return;
    }
    this.conns.add(s);
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => s.destroy());
    let peer: Peer;
    try {
      peer = (this.o.peerOf ?? kernelPeer)(s);
    } catch (e) {
      this.o.log('warn', `control socket ${sockPath}: cannot read the peer's credentials (${describeKernelError(e)}); connection closed`, { event: 'control-refused' });
      s.destroy();
      return;
    }
    const verdict = checkPeer(peer, this.o.gid);
    if (!verdict.allowed) {
      this.o.log('warn', `control socket ${sockPath}: refused pid ${peer.pid} uid ${peer.uid}: ${verdict.why}`, {
        event: 'control-refused', pid: peer.pid, uid: peer.uid, gid: peer.gid, groups: peer.groups,
      });
      s.end(encode({ ok: false, error: `permission denied: ${verdict.why}; the kiosk's control socket is for root and the group in control.group` }));
      s.resume(); // read (and drop) what it sent, so that its close is seen
      s.setTimeout(5000, () => s.destroy());
      return;
    }
    s.setEncoding('utf8');
    s.setTimeout(this.o.idleMs ?? 60_000, () => s.destroy());
    const split = new LineSplitter(MAX_REQUEST_BYTES);
    let chain = Promise.resolve();
    s.on('data', (chunk: string) => {
      const { lines, tooLong } = split.push(chunk);
      for (const line of lines) {
        if (line.trim() === '') continue;
        chain = chain.then(() => this.answer(s, line, peer));
      }
      if (tooLong) {
        chain = chain.then(() => void s.end(encode({ ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes: closing` })));
      }
    });
  }

  private async answer(s: net.Socket, line: string, peer: Peer): Promise<void> {
    if (s.destroyed) return;
    const r = parseRequest(line);
    let res: Response;
    if (!r.ok) res = { ok: false, error: r.error };
    else {
      const id = r.value.id;
      this.o.log('debug', `control: ${r.value.cmd} from pid ${peer.pid} uid ${peer.uid}`, { event: 'control-request', cmd: r.value.cmd, pid: peer.pid, uid: peer.uid });
      try {
        res = await this.o.handle(r.value);
      } catch (e) {
        res = { ok: false, error: `${r.value.cmd} failed: ${describeKernelError(e)}` };
      }
      if (id !== undefined) res = { ...res, id };
    }
    if (!s.destroyed) s.write(encode(res));
  }

  /** Stop listening, drop every connection, remove the socket file. Idempotent. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns) c.destroy();
    if (!server) return;
    await new Promise<void>((r) => server.close(() => r()));
    try {
      unlinkSync(this.o.socket);
    } catch {
      // Node removes it itself on close
    }
  }
}
