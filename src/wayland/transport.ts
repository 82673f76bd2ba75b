// Where Wayland bytes travel: the socket path (as libwayland resolves it) and the transport
// interface the client speaks through. Two implementations are meant: NetTransport here (node:net,
// no descriptor passing: enough for the registry, sync and the lease device's connector list),
// and the addon's UNIX socket with SCM_RIGHTS (to come: it must satisfy WaylandTransport with
// passesFds = true, deliver the descriptors of one recvmsg with the bytes of that recvmsg, and
// send a message's descriptors with its first byte, as libwayland does).
import { existsSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FdPassingUnsupportedError, NoCompositorError } from './errors.js';

export interface WaylandTransport {
  /** true when send() can pass descriptors and received descriptors are delivered */
  readonly passesFds: boolean;
  /** queue bytes (whole messages) and the descriptors that go with them */
  send(bytes: Uint8Array, fds: readonly number[]): void;
  /** register the receiver: every chunk as read, with the descriptors that arrived with it */
  onData(handler: (bytes: Uint8Array, fds: number[]) => void): void;
  /** register the close handler: called once, with the error when it was not a clean close */
  onClose(handler: (error?: Error) => void): void;
  close(): void;
}

/**
 * The socket a client connects to, as libwayland's wl_display_connect(NULL) finds it:
 * $WAYLAND_DISPLAY (default "wayland-0"), absolute or relative to $XDG_RUNTIME_DIR.
 * $WAYLAND_SOCKET (an inherited connected fd) needs the addon and is refused here.
 */
export function resolveSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env['WAYLAND_SOCKET']) {
    throw new NoCompositorError('wayland-socket-fd', undefined, `$WAYLAND_SOCKET=${env['WAYLAND_SOCKET']} (an inherited socket) is not supported yet: unset it and set $WAYLAND_DISPLAY`);
  }
  const display = env['WAYLAND_DISPLAY'] || 'wayland-0';
  const runtime = env['XDG_RUNTIME_DIR'];
  const sudo = env['SUDO_USER'] ? ' (sudo drops them: sudo --preserve-env=WAYLAND_DISPLAY,XDG_RUNTIME_DIR vgpu-flip ...)' : '';
  let socketPath: string;
  if (path.isAbsolute(display)) socketPath = display;
  else if (!runtime) {
    throw new NoCompositorError(
      'no-runtime-dir',
      undefined,
      `$XDG_RUNTIME_DIR is not set${env['WAYLAND_DISPLAY'] ? '' : ' and neither is $WAYLAND_DISPLAY'}: run vgpu-flip from a terminal of the Wayland desktop${sudo}`,
    );
  } else socketPath = path.join(runtime, display);
  if (!existsSync(socketPath)) {
    const why = env['WAYLAND_DISPLAY'] ? `$WAYLAND_DISPLAY=${env['WAYLAND_DISPLAY']}` : '$WAYLAND_DISPLAY is not set, and the default';
    throw new NoCompositorError(
      env['WAYLAND_DISPLAY'] ? 'socket-missing' : 'no-display',
      socketPath,
      `${why} socket ${socketPath} does not exist: is the compositor running (in this user's session)?${sudo}`,
    );
  }
  if (!statSync(socketPath).isSocket()) {
    throw new NoCompositorError('socket-missing', socketPath, `${socketPath} is not a socket`);
  }
  return socketPath;
}

/** node:net over the UNIX socket: no descriptor passing (send() with fds throws) */
export class NetTransport implements WaylandTransport {
  readonly passesFds = false;
  private closeHandlers: ((e?: Error) => void)[] = [];
  private closed = false;
  private lastError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('error', (e) => {
      this.lastError = e;
    });
    socket.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      for (const h of this.closeHandlers) h(this.lastError);
    });
  }

  /** connect; a missing socket or a refused connection is a NoCompositorError */
  static connect(socketPath: string): Promise<NetTransport> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path: socketPath });
      const fail = (e: NodeJS.ErrnoException): void => {
        const reason = e.code === 'ENOENT' ? 'socket-missing' : 'refused';
        reject(new NoCompositorError(reason, socketPath, `cannot connect to ${socketPath}: ${e.code ?? e.message} (a compositor that exited leaves its socket behind)`, { cause: e }));
      };
      s.once('error', fail);
      s.once('connect', () => {
        s.off('error', fail);
        resolve(new NetTransport(s));
      });
    });
  }

  send(bytes: Uint8Array, fds: readonly number[]): void {
    if (fds.length) throw new FdPassingUnsupportedError(`sending ${fds.length} descriptor(s)`);
    this.socket.write(bytes);
  }

  onData(handler: (bytes: Uint8Array, fds: number[]) => void): void {
    this.socket.on('data', (b: Buffer) => handler(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), []));
  }

  onClose(handler: (error?: Error) => void): void {
    this.closeHandlers.push(handler);
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
