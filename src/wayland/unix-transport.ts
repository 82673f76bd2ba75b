// The Wayland transport with descriptor passing: the addon's UNIX stream socket
// (native/addon/unixsock.cc: sendmsg/recvmsg with SCM_RIGHTS), read when libuv says it is
// readable (pollReadable), written at once and, when the socket buffer is full, again when
// libuv says it is writable (the same poll handle). As libwayland does: a message's descriptors travel with its first byte,
// and the descriptors of one recvmsg are delivered with that recvmsg's bytes.
import { appendFileSync } from 'node:fs';
import { hasCode, isKernelError } from '../binding/errors.js';
import { native } from '../binding/index.js';
import { pollSocket, unixNative, type SocketPoller, type UnixSockAddon } from '../binding/unixsock.js';
import { NoCompositorError, WaylandError } from './errors.js';
import type { WaylandTransport } from './transport.js';
import { hex } from './wire.js';

/** what the transport needs of the addon (tests pass fakes) */
export type UnixTransportApi = UnixSockAddon & { pollReadable(fd: number, cb: () => void): SocketPoller; close(fd: number): void };

const defaultApi = (): UnixTransportApi => ({
  unixConnect: (p) => unixNative.unixConnect(p),
  unixSocketpair: () => unixNative.unixSocketpair(),
  unixSend: (fd, d, f) => unixNative.unixSend(fd, d, f),
  unixRecv: (fd, n) => unixNative.unixRecv(fd, n),
  pollReadable: (fd, cb) => pollSocket(fd, cb),
  close: (fd) => native.close(fd),
});

/** bytes per recvmsg (libwayland's connection buffer is 4 KiB; more is fine) */
const RECV_BYTES = 65536;
/** recvmsg calls per readable callback before yielding to the event loop (it fires again) */
const MAX_READS = 64;

interface Pending {
  bytes: Buffer;
  /** not yet sent: they go with the first byte of `bytes` */
  fds: readonly number[];
}

export class UnixTransport implements WaylandTransport {
  readonly passesFds = true;
  private closed = false;
  private readonly out: Pending[] = [];
  /** waiting for the socket to take more (its buffer was full) */
  private waitingWritable = false;
  private poller: SocketPoller | undefined;
  private dataHandler: ((bytes: Uint8Array, fds: number[]) => void) | undefined;
  private readonly closeHandlers: ((e?: Error) => void)[] = [];
  /** every write and read as it happened (fixtures: test/fixtures/wayland-README.md) */
  capture: ((dir: '>' | '<', bytes: Uint8Array, fds: number) => void) | undefined;
  /** received before onData was called */
  private early: { bytes: Uint8Array; fds: number[] }[] = [];

  constructor(
    /** the connected socket; owned (closed) by the transport */
    readonly fd: number,
    /** what it is connected to, for messages */
    readonly label: string,
    private readonly api: UnixTransportApi = defaultApi(),
  ) {
    this.poller = api.pollReadable(fd, () => this.readable());
  }

  /** connect to a compositor's socket; failures are NoCompositorError saying what to do */
  static connect(socketPath: string, api: UnixTransportApi = defaultApi()): UnixTransport {
    let fd: number;
    try {
      fd = api.unixConnect(socketPath);
    } catch (e) {
      if (!isKernelError(e)) throw e;
      const reason = e.code === 'ENOENT' ? 'socket-missing' : 'refused';
      const hint =
        e.code === 'ECONNREFUSED' ? ' (nobody listens: a compositor that exited leaves its socket behind)'
        : e.code === 'EACCES' ? " (the socket belongs to another user: run vgpu-flip as the desktop's user, or as root)"
        : '';
      throw new NoCompositorError(reason, socketPath, `cannot connect to ${socketPath}: ${e.code}${hint}`, { cause: e });
    }
    const t = new UnixTransport(fd, socketPath, api);
    // $VGPU_FLIP_WAYLAND_CAPTURE=FILE: append the exchange to FILE in the fixtures' format
    const file = process.env['VGPU_FLIP_WAYLAND_CAPTURE'];
    if (file) {
      appendFileSync(file, `# connection to ${socketPath} (pid ${process.pid})\n`);
      t.capture = (dir, bytes, fds) => appendFileSync(file, `${dir} ${hex(bytes)}\n${fds ? `# fds ${fds}\n` : ''}`);
    }
    return t;
  }

  send(bytes: Uint8Array, fds: readonly number[]): void {
    if (this.closed) throw new WaylandError('connection-closed', `the connection to ${this.label} is closed`);
    if (bytes.length === 0 && fds.length === 0) return;
    if (bytes.length === 0) throw new WaylandError('bad-send', 'descriptors need bytes to travel with');
    this.out.push({ bytes: Buffer.from(bytes), fds });
    this.flush();
  }

  /** write what is queued; on EAGAIN go on when the socket is writable */
  private flush(): void {
    if (this.waitingWritable) return; // the writable callback flushes
    while (!this.closed && this.out.length) {
      const head = this.out[0]!;
      let n: number;
      try {
        n = this.api.unixSend(this.fd, head.bytes, head.fds);
      } catch (e) {
        // EPIPE / ECONNRESET: the compositor closed; its error message (if any) is still to be read
        this.readable();
        this.end(hasCode(e, 'EPIPE', 'ECONNRESET') ? undefined : (e as Error));
        return;
      }
      if (n < 0) {
        this.waitingWritable = true;
        this.poller?.onWritable(() => {
          this.waitingWritable = false;
          this.flush();
        });
        return;
      }
      this.capture?.('>', head.bytes.subarray(0, n), head.fds.length);
      if (n >= head.bytes.length) this.out.shift();
      else this.out[0] = { bytes: head.bytes.subarray(n), fds: [] };
    }
  }

  private readable(): void {
    for (let i = 0; i < MAX_READS && !this.closed; i++) {
      let r;
      try {
        r = this.api.unixRecv(this.fd, RECV_BYTES);
      } catch (e) {
        this.end(hasCode(e, 'ECONNRESET') ? undefined : (e as Error));
        return;
      }
      if (r === null) return;
      if (r.eof) {
        this.end(undefined);
        return;
      }
      if (r.fdsTruncated) {
        for (const fd of r.fds) this.closeQuietly(fd);
        this.end(new WaylandError('fds-truncated', `descriptors from ${this.label} were lost (MSG_CTRUNC): the connection cannot continue`));
        return;
      }
      const chunk = { bytes: new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength), fds: r.fds };
      this.capture?.('<', chunk.bytes, chunk.fds.length);
      if (this.dataHandler) this.dataHandler(chunk.bytes, chunk.fds);
      else this.early.push(chunk);
    }
  }

  onData(handler: (bytes: Uint8Array, fds: number[]) => void): void {
    this.dataHandler = handler;
    for (const c of this.early.splice(0)) handler(c.bytes, c.fds);
  }

  onClose(handler: (error?: Error) => void): void {
    this.closeHandlers.push(handler);
  }

  /** the peer closed, or the socket failed: tell the handlers once, then let go of the fd */
  private end(error: Error | undefined): void {
    if (this.closed) return;
    this.release();
    for (const h of this.closeHandlers.splice(0)) h(error);
  }

  /** our side closes: queued requests are written first when the socket takes them now */
  close(): void {
    if (this.closed) return;
    this.flushNow();
    this.release();
    this.closeHandlers.length = 0;
  }

  private flushNow(): void {
    for (const head of this.out.splice(0)) {
      try {
        const n = this.api.unixSend(this.fd, head.bytes, head.fds);
        if (n > 0) this.capture?.('>', head.bytes.subarray(0, n), head.fds.length);
        if (n < head.bytes.length) return;
      } catch {
        return;
      }
    }
  }

  private release(): void {
    this.closed = true;
    this.waitingWritable = false;
    this.out.length = 0;
    this.poller?.stop();
    this.poller = undefined;
    for (const c of this.early.splice(0)) for (const fd of c.fds) this.closeQuietly(fd);
    this.closeQuietly(this.fd);
  }

  private closeQuietly(fd: number): void {
    try {
      this.api.close(fd);
    } catch {
      /* already closed */
    }
  }
}
