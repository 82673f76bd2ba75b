import type { Command } from 'commander';

/** `vgpu-flip inspect`: DRM devices and vGPUs, as tables or drm_info-style JSON. */
export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('list DRM devices (connectors, CRTCs, planes, formats) and vGPUs (mdev, IOMMU group, holder, PROBE)')
    .option('--json', 'JSON output (DRM devices in drm_info -j layout, plus "vgpus")')
    .option('--device <path...>', 'inspect only these DRM devices (default: every /dev/dri/card*)')
    .option('-v, --verbose', 'list every format and modifier')
    .option('--probe', 'also open idle vGPUs\' VFIO groups to PROBE them (default: PROBE only vGPUs a VMM holds, through its fd; a VMM starting meanwhile would get EBUSY)')
    .option('--no-probe', 'PROBE no vGPU at all')
    .option('--leases', 'instead: the connectors the running Wayland compositor offers for lease (wp_drm_lease_v1: $WAYLAND_DISPLAY, $XDG_RUNTIME_DIR)')
    .action(async (opts: { json?: boolean; device?: string[]; verbose?: boolean; probe?: boolean; leases?: boolean }) => {
      if (opts.leases) {
        const { listLeases, renderLeaseListing, leaseListingJson } = await import('../../wayland/leases.js');
        const listing = await listLeases();
        process.stdout.write(opts.json ? leaseListingJson(listing) : renderLeaseListing(listing));
        return;
      }
      // loaded lazily so `vgpu-flip --help` works without the native addon
      const { collectInspect, inspectExitCode } = await import('../../inspect/collect.js');
      const report = collectInspect({
        ...(opts.device ? { devices: opts.device } : {}),
        probe: opts.probe === undefined ? 'held' : opts.probe ? 'all' : 'none',
      });
      if (opts.json) {
        const { inspectJsonText } = await import('../../inspect/json.js');
        process.stdout.write(inspectJsonText(report));
      } else {
        const { renderInspectText } = await import('../../inspect/text.js');
        process.stdout.write(renderInspectText(report, { verbose: opts.verbose ?? false }));
      }
      process.exitCode = inspectExitCode(report);
    });
}
