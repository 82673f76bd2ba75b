// The addon's UNIX stream sockets with descriptor passing (native/addon/unixsock.cc), for the
// Wayland client (src/wayland/unix-transport.ts): Node's net.Socket cannot send or receive
// SCM_RIGHTS. Declared apart from types.ts, like sockcred.ts: a separate part of the addon,
// loaded through the same lazily loaded module.
import { native } from './index.js';

/** One recvmsg: the bytes and the descriptors that came with them. */
export interface UnixRecvResult {
  data: Buffer;
  /** received descriptors (O_CLOEXEC), now owned by the caller */
  fds: number[];
  /** the peer closed the connection (no bytes, no descriptors) */
  eof: boolean;
  /** MSG_CTRUNC: descriptors were lost (more than 253 in one message); `fds` are the ones received */
  fdsTruncated: boolean;
}

export interface UnixSockAddon {
  /**
   * A connected AF_UNIX stream socket (O_CLOEXEC, then O_NONBLOCK). Throws a kernel error:
   * ENOENT (no such socket), ECONNREFUSED (nobody listens), EACCES, ENAMETOOLONG (> 107 bytes).
   * Watch it with pollReadable; close it with close().
   */
  unixConnect(path: string): number;
  /** socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC) */
  unixSocketpair(): [number, number];
  /**
   * One non-blocking sendmsg (MSG_NOSIGNAL) of `data` with `fds` as SCM_RIGHTS (they travel with
   * the first byte; the caller still owns and may close them afterwards). Returns the bytes
   * written (possibly fewer than data.length), or -1 when the socket buffer is full (EAGAIN:
   * nothing was sent). Throws a kernel error (EPIPE, ECONNRESET: the peer closed).
   */
  unixSend(fd: number, data: Buffer, fds: readonly number[]): number;
  /** One non-blocking recvmsg of at most maxBytes; null when nothing is there (EAGAIN). */
  unixRecv(fd: number, maxBytes: number): UnixRecvResult | null;
}

/** pollReadable's poller (types.ts FdPoller) with the writable watch the transport uses */
export interface SocketPoller {
  /** stop watching; the fd itself is not closed. Idempotent. */
  stop(): void;
  /**
   * Call `cb` once when the fd can be written again (a full socket buffer has room), on the
   * same libuv handle as the readable watch (libuv has one per fd); null cancels. Throws once stopped.
   */
  onWritable(cb: (() => void) | null): void;
}

export const unixNative: UnixSockAddon = native as unknown as UnixSockAddon;

/** native.pollReadable, typed with its writable watch */
export const pollSocket = (fd: number, onReadable: () => void): SocketPoller => native.pollReadable(fd, onReadable) as unknown as SocketPoller;
