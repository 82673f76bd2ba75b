// The addon's UNIX socket helpers (native/addon/sockcred.cc): the peer of a connected socket
// (SO_PEERCRED, SO_PEERGROUPS) for the kiosk's control socket, and one datagram to a systemd
// notify socket ($NOTIFY_SOCKET). Node has neither. Declared apart from types.ts: a separate
// part of the addon, loaded through the same lazily loaded module.
import { native } from './index.js';

/** The peer process of a connected UNIX socket as the kernel recorded it at connect(). */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface SockCredAddon {
  /** getsockopt(SO_PEERCRED); throws a kernel error (ENOTSOCK, ENOTCONN, EBADF) */
  socketPeerCred(fd: number): PeerCred;
  /** getsockopt(SO_PEERGROUPS): the peer's supplementary groups at connect() (Linux >= 4.13) */
  socketPeerGroups(fd: number): number[];
  /**
   * One datagram `message` to the notify socket `path` (an absolute path, or "@name" for the
   * abstract namespace); returns the bytes sent. Throws a kernel error (ECONNREFUSED, ENOENT,
   * EAGAIN ...) or a TypeError for a path that is neither.
   */
  sdNotify(path: string, message: string): number;
}

export const sockNative: SockCredAddon = native as unknown as SockCredAddon;

/**
 * The fd of a connected net.Socket (a UNIX stream socket), for socketPeerCred. Node does not
 * expose it: it is the libuv handle's fd (`_handle.fd`, -1 or missing on other platforms).
 */
export function socketFd(sock: object): number {
  const h = (sock as { _handle?: { fd?: unknown } })._handle;
  const fd = h?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no file descriptor (closed already, or not a UNIX socket)');
  return fd;
}
