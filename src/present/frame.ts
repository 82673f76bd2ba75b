// One frame of an output: the nonblocking atomic commit that carries every layer's change, and
// what its outcome means (a copied frame carries its damage, FB_DAMAGE_CLIPS, where the plane has
// the property). Accepted: the layers' sources learn which framebuffer goes on screen
// (the flip event completes it). Refused: the optimistic view is undone (retried next frame);
// EBUSY waits for the next frame; EACCES/EPERM (not DRM master) pauses the display; TEST_ONLY
// passing while the commit fails means the driver cannot scan that buffer out: it is copied.
import { DRM_MODE_ATOMIC_NONBLOCK, DRM_MODE_PAGE_FLIP_EVENT } from '../binding/constants.js';
import type { AtomicRequest, PropertyBlob } from '../kms/index.js';
import { commitFailure } from '../flip/decide.js';
import { packDamageClips } from '../flip/damage.js';
import { DAMAGE_PROP, type FramePlane } from './look.js';
import type { Layer } from './layer.js';
import type { Output } from './output.js';

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export interface PendingFrame {
  userData: bigint;
  committedUs: number;
  planes: FramePlane[];
}

/**
 * The damage of copied frames as FB_DAMAGE_CLIPS blobs, on planes that have the property. A
 * blob that cannot be made only costs the driver a full upload: the frame goes without it.
 */
function damageClips(out: Output, req: AtomicRequest, frames: FramePlane[]): Array<{ layer: Layer; blob: PropertyBlob }> {
  const made: Array<{ layer: Layer; blob: PropertyBlob }> = [];
  for (const f of frames) {
    const rects = f.got?.damage;
    const planeId = f.layer.assignment?.planeId;
    if (!rects?.length || planeId === undefined || f.fbId === 0 || !req.index.has(planeId, DAMAGE_PROP)) continue;
    try {
      const blob = out.display.dev.createBlob(packDamageClips(rects));
      req.set(planeId, DAMAGE_PROP, blob.id);
      made.push({ layer: f.layer, blob });
    } catch {
      /* no clips: a full update */
    }
  }
  return made;
}

/** Commit a frame; the pending frame, or null when nothing was committed (retried later). */
export function commitFrame(out: Output, req: AtomicRequest, frames: FramePlane[]): PendingFrame | null {
  const userData = out.display.dev.allocUserData();
  const committedUs = nowUs();
  for (const f of frames) f.layer.source.committing(f.fbId);
  const blobs = damageClips(out, req, frames);
  try {
    req.commit(DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT, userData);
    out.stats.commits++;
    for (const b of blobs) b.layer.stats.damageClips++;
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
  } finally {
    // the commit holds its own reference to a blob it used: ours goes at once
    for (const b of blobs) {
      try {
        b.blob.destroy();
      } catch {
        /* released with the device */
      }
    }
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
