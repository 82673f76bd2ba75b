// Who may use the kiosk's control socket (issue 9): root, or a member of the configured group.
// The socket file's mode (0660 with the group, 0600 without) keeps others from connecting; the
// peer's credentials (SO_PEERCRED, SO_PEERGROUPS, recorded by the kernel at connect()) are
// checked for every connection all the same: a process with CAP_DAC_OVERRIDE, a socket mode
// changed by hand, or an fd passed on are refused and logged. Pure logic (the group file's text
// is passed in).
import { readFileSync } from 'node:fs';

export interface Peer {
  pid: number;
  uid: number;
  gid: number;
  /** supplementary groups at connect(); null when the kernel could not say (pre-4.13) */
  groups: number[] | null;
}

export type PeerVerdict = { allowed: true; why: string } | { allowed: false; why: string };

/** Root always; with a group, a peer whose primary or supplementary groups hold it. */
export function checkPeer(peer: Peer, allowedGid: number | null): PeerVerdict {
  if (peer.uid === 0) return { allowed: true, why: 'root' };
  if (allowedGid === null) return { allowed: false, why: `uid ${peer.uid} is not root, and no control.group is configured (root only)` };
  if (peer.gid === allowedGid) return { allowed: true, why: `primary group ${allowedGid}` };
  if (peer.groups?.includes(allowedGid)) return { allowed: true, why: `member of group ${allowedGid}` };
  const groups = peer.groups === null ? 'supplementary groups unknown' : `groups ${[peer.gid, ...peer.groups].join(',')}`;
  return { allowed: false, why: `uid ${peer.uid} (${groups}) is neither root nor in group ${allowedGid}` };
}

/**
 * A group name or numeric gid -> gid, from the text of /etc/group. Throws, saying what to do,
 * for a name that is not there.
 */
export function resolveGroup(group: string, groupFile: string, file = '/etc/group'): number {
  if (/^[0-9]+$/.test(group)) {
    const n = Number(group);
    if (!Number.isSafeInteger(n) || n > 0xfffffffe) throw new Error(`control.group ${group}: not a valid gid`);
    return n;
  }
  for (const line of groupFile.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  throw new Error(`control.group "${group}": no such group in ${file} (create it with \`groupadd ${group}\`, or give a numeric gid)`);
}

/** resolveGroup against this machine's /etc/group (read only for a name). */
export function lookupGroup(group: string, file = '/etc/group'): number {
  if (/^[0-9]+$/.test(group)) return resolveGroup(group, '', file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`control.group "${group}": cannot read ${file} (${(e as Error).message}); give a numeric gid`);
  }
  return resolveGroup(group, text, file);
}

/** the socket file's mode: group read/write only when a group may use it */
export function socketMode(allowedGid: number | null): number {
  return allowedGid === null ? 0o600 : 0o660;
}
