import type { Command } from 'commander';

interface DebugfsCliOptions {
  json?: boolean;
  device?: string;
  debugfs?: string;
  runDir?: string;
  simFbIds: boolean;
  kms?: boolean;
}

/**
 * `vgpu-flip debugfs`: guest plane -> framebuffer -> hardware plane -> CRTC -> connector, from
 * the kernel's debugfs (DRM atomic state, vGPU attributes) and the state published by running
 * `vgpu-flip assign` processes. Reads files only: no DRM or VFIO device is opened.
 */
export function registerDebugfs(program: Command): void {
  program
    .command('debugfs')
    .description('show which guest plane is on which hardware plane, CRTC and connector (reads debugfs; root)')
    .option('--json', 'JSON output for scripts')
    .option('--device <card>', 'only this DRM device: /dev/dri/cardN, cardN or the minor number (default: all)')
    .option('--debugfs <path>', 'debugfs mount point (default $VGPU_FLIP_DEBUGFS or /sys/kernel/debug)')
    .option('--run-dir <path>', 'where running vgpu-flip processes publish their assignment (default $VGPU_FLIP_RUN_DIR or /run/vgpu-flip)')
    .option('--kms', 'also open the card nodes (read-only KMS queries, no DRM master) to name each plane\'s type (primary, overlay, cursor)')
    .option('--no-sim-fb-ids', 'do not read vgpu-sim\'s <plane>/fb_id attributes (reading one makes the driver create the plane\'s host framebuffer if it has none yet)')
    .addHelpText(
      'after',
      '\nSources: <debugfs>/dri/N/state and framebuffer (DRM atomic state), <debugfs>/vgpu_sim/<uuid>/ and\n' +
        '<debugfs>/dri/N/gvt/ (vGPU attributes), <run-dir>/<pid>.json (published by running `vgpu-flip assign`).\n' +
        'Exit status: 0 shown; 2 no DRM device with an atomic state dump; 3 debugfs not mounted; 4 not root.',
    )
    .action(async (opts: DebugfsCliOptions) => {
      const { collectDebugfs, DebugfsUnavailableError } = await import('../../debugfs/collect.js');
      const { renderDebugfsJson, renderDebugfsText } = await import('../../debugfs/render.js');
      let report;
      try {
        report = collectDebugfs({
          ...(opts.debugfs ? { debugfsRoot: opts.debugfs } : {}),
          ...(opts.runDir ? { runDir: opts.runDir } : {}),
          ...(opts.device ? { device: opts.device } : {}),
          simFbIds: opts.simFbIds,
          ...(opts.kms ? { planeTypes: await kmsPlaneTypes() } : {}),
        });
      } catch (e) {
        if (e instanceof DebugfsUnavailableError) {
          // a clear message and a non-zero exit, no stack trace
          process.stderr.write(`vgpu-flip debugfs: ${e.message}\n`);
          process.exitCode = e.reason === 'not-root' ? 4 : e.reason === 'not-mounted' ? 3 : 2;
          return;
        }
        throw e;
      }
      process.stdout.write(opts.json ? renderDebugfsJson(report) : renderDebugfsText(report));
    });
}

/** plane id -> type from the KMS API of /dev/dri/card<minor> (null when it cannot be read). */
async function kmsPlaneTypes(): Promise<(minor: number) => Map<number, string> | null> {
  const { DrmDevice } = await import('../../kms/index.js');
  return (minor: number) => {
    let dev: ReturnType<typeof DrmDevice.open> | null = null;
    try {
      dev = DrmDevice.open(`/dev/dri/card${minor}`);
      return new Map(dev.snapshot().planes.map((p) => [p.id, p.type]));
    } catch {
      return null;
    } finally {
      dev?.close();
    }
  };
}
