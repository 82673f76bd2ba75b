// One frame of an output: the nonblocking atomic commit that carries every layer's change, and
// what its outcome means. Accepted: the layers' sources learn which framebuffer goes on screen
// (the flip event completes it). Refused: the optimistic view is undone (retried next frame);
// EBUSY waits for the next frame; EACCES/EPERM (not DRM master) pauses the display; TEST_ONLY
// passing while the commit fails means the driver cannot scan that buffer out: it is copied.
import { DRM_MODE_ATOMIC_NONBLOCK, DRM_MODE_PAGE_FLIP_EVENT } from '../binding/constants.js';
import type { AtomicRequest } from '../kms/index.js';
import { commitFailure } from '../flip/decide.js';
import type { FramePlane } from './look.js';
import type { Output } from './output.js';

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export interface PendingFrame {
  userData: bigint;
  committedUs: number;
  planes: FramePlane[];
}

/** Commit a frame; the pending frame, or null when nothing was committed (retried later). */
export function commitFrame(out: Output, req: AtomicRequest, frames: FramePlane[]): PendingFrame | null {
  const userData = out.display.dev.allocUserData();
  const committedUs = nowUs();
  for (const f of frames) f.layer.source.committing(f.fbId);
  try {
    req.commit(DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT, userData);
    out.stats.commits++;
  } catch (e) {
    // undo the optimistic view updates: retried next frame
    for (const f of frames) {
      f.layer.source.commitFailed(f.layer.fbId);
      f.layer.view.shown = f.layer.view.shown ? { ...f.layer.view.shown, id: -1 } : null;
      if (f.fbId === 0) f.layer.view.blanked = false; // a blanking frame that failed is retried
    }
    const why = commitFailure(e);
    if (why === 'busy') return null;
    if (why === 'master' && out.display.watch?.commitFailed(e)) return null; // every output paused until master is back
    // TEST_ONLY passes but the real commit fails: a driver that cannot use the buffer (vkms
    // needs vmap). Copy the buffers never shown before; errors that do not mean "this buffer
    // cannot be scanned out" (not master, EBUSY) never demote a buffer.
    const reason = `TEST_ONLY passed but the commit failed: ${(e as Error).message.split(' [')[0]}`;
    const fresh = frames.filter((f) => f.got?.got && !f.got.got.copied && f.got.got.entry.scanout === 'untried');
    if (why === 'buffer' && fresh.length && req.testOnly(0).ok) {
      for (const f of fresh) f.layer.source.refuse(f.got!, reason);
    } else {
      out.stats.errors++;
      const n = out.commitStreak.current + 1;
      if (out.commitStreak.fail()) out.report({ stage: 'commit', error: e, count: n, fatal: false });
    }
    return null;
  }
  const n = out.commitStreak.ok();
  if (n >= out.reportAfter) out.emit('recovered', { stage: 'commit', afterFailures: n });
  out.display.watch?.commitSucceeded();
  for (const f of frames) {
    const l = f.layer;
    l.fbId = f.fbId;
    l.source.presented(f.got ?? null, f.fbId);
    l.view.copyMode = l.source.path === 'copy' || l.source.copying !== null;
    if (f.id !== 0 && f.fbId !== 0) l.stats.flips++;
  }
  return { userData, committedUs, planes: frames };
}
