// `vgpu-flip assign` (and demo): the status reporter - a live line on a TTY, plain lines every few
// seconds otherwise, JSON lines with --json; the engine's events as lines.
import type { FlipEngine } from '../../flip/engine.js';

/** A status reporter: live line on a TTY, plain lines every few seconds otherwise, JSON lines with --json. */
export function attachStatus(engine: FlipEngine, o: { json: boolean; tty: boolean; out: (s: string) => void; intervalMs?: number }): () => void {
  const emitJson = (type: string, data: unknown): void =>
    o.out(JSON.stringify({ type, time: new Date().toISOString(), ...(data as object) }, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)) + '\n');
  let lastFrames = 0;
  let lastT = Date.now();
  const line = (): string => {
    const now = Date.now();
    const fps = ((engine.stats.frames - lastFrames) * 1000) / Math.max(1, now - lastT);
    lastFrames = engine.stats.frames;
    lastT = now;
    let flips = 0;
    let copies = 0;
    let bytes = 0;
    for (const p of Object.values(engine.stats.planes)) {
      flips += p.flips + p.moves;
      copies += p.copies;
      bytes += p.bytesCopied;
    }
    if (engine.path === 'drm_fb') return engine.drmFbStatus();
    return `fps ${fps.toFixed(1)} | flips ${flips} | copies ${copies} (${(bytes / 1048576).toFixed(1)} MiB) | commits ${engine.stats.commits} | errors ${engine.stats.errors}`;
  };
  const offs: (() => void)[] = [];
  const on = <E extends 'assigned' | 'not-ready' | 'fallback' | 'error' | 'recovered' | 'stopped'>(ev: E, fn: (e: never) => void): void => {
    engine.on(ev, fn as never);
    offs.push(() => engine.off(ev, fn as never));
  };
  const clearLine = (): void => {
    if (o.tty && !o.json) o.out('\r\x1b[2K');
  };
  on('assigned', (e: Parameters<import('../../flip/events.js').EngineEvents['assigned']>[0]) => {
    if (o.json) return emitJson('assigned', { layout: e.layout, paths: e.paths, explanation: e.explanation, modeset: e.modeset, reason: e.reason });
    clearLine();
    o.out(`assigned (${e.reason}):\n${e.explanation.map((l) => `  ${l}`).join('\n')}\n`);
  });
  on('not-ready', (e: { plane: string; action: string }) => {
    if (o.json) return emitJson('not-ready', e);
    clearLine();
    o.out(`guest ${e.plane} plane not ready: ${e.action === 'wait' ? 'waiting for the guest' : e.action === 'blank' ? 'plane blanked' : 'keeping the last frame'}\n`);
  });
  on('fallback', (e: { plane: string; reason: string }) => {
    if (o.json) return emitJson('fallback', e);
    clearLine();
    o.out(`guest ${e.plane}: falling back to the copy path: ${e.reason}\n`);
  });
  on('error', (e: { plane?: string; stage: string; message: string; count: number; kernel: unknown }) => {
    if (o.json) return emitJson('error', e);
    clearLine();
    const msg = e.message.length > 600 ? `${e.message.slice(0, 600)}…` : e.message;
    o.out(`error${e.plane ? ` (${e.plane})` : ''} in ${e.stage}${e.count > 1 ? ` (${e.count} in a row)` : ''}: ${msg}${(e as { fatal?: boolean }).fatal ? '' : '; retrying'}\n`);
  });
  on('recovered', (e: { plane?: string; stage: string; afterFailures: number }) => {
    if (o.json) return emitJson('recovered', e);
    clearLine();
    o.out(`recovered${e.plane ? ` (${e.plane})` : ''}: ${e.stage} works again after ${e.afterFailures} failure(s)\n`);
  });
  on('stopped', (e: { message: string }) => {
    if (o.json) return emitJson('stopped', e);
    clearLine();
    o.out(`${e.message.length > 600 ? `${e.message.slice(0, 600)}…` : e.message}\n`);
  });
  const interval = o.intervalMs ?? (o.tty && !o.json ? 500 : 5000);
  const t = setInterval(() => {
    if (o.json) emitJson('status', { stats: engine.stats, calls: engine.counter.snapshot() });
    else if (o.tty) o.out(`\r\x1b[2K${line()}`);
    else o.out(`${line()}\n`);
  }, interval);
  t.unref();
  return () => {
    clearInterval(t);
    for (const f of offs) f();
  };
}
