// Errors of the Wayland client, worded for a desktop user: what is wrong and what to do.
// Every class carries the facts it was built from (for --json and tests).

/** why vgpu-flip offers only what the compositor offers for lease, and how to change that */
export const NON_DESKTOP_HINT =
  'Compositors offer for lease only connectors whose kernel "non-desktop" property is 1 ' +
  '(the kernel sets it from the EDID of VR headsets and other head-mounted displays). ' +
  'sway 1.7 (and later, to 1.10) and KWin have no setting to offer an ordinary monitor: ' +
  'they read only that property. To lease a desktop monitor, run vgpu-flip outside the desktop ' +
  "(a text console, or with the compositor stopped) on the monitor's DRM device instead.";

/** base class: `code` is stable for scripts */
export class WaylandError extends Error {
  override name = 'WaylandError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** no compositor to talk to: $WAYLAND_DISPLAY / $XDG_RUNTIME_DIR unset, or nothing listens */
export class NoCompositorError extends WaylandError {
  override name = 'NoCompositorError';
  constructor(
    readonly reason: 'no-runtime-dir' | 'no-display' | 'socket-missing' | 'refused' | 'wayland-socket-fd',
    readonly socketPath: string | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('no-compositor', `no Wayland compositor: ${detail}`, options);
  }
}

/** the compositor sent wl_display.error: the connection is dead */
export class CompositorProtocolError extends WaylandError {
  override name = 'CompositorProtocolError';
  constructor(
    /** interface of the object the error is about ("unknown" when it was not ours) */
    readonly interfaceName: string,
    readonly objectId: number,
    readonly errorCode: number,
    /** the enum entry name for the code, when the interface's XML defines it */
    readonly errorName: string | undefined,
    readonly compositorMessage: string,
  ) {
    super(
      'protocol-error',
      `the compositor closed the connection with a protocol error on ${interfaceName}@${objectId}: ` +
        `code ${errorCode}${errorName ? ` (${errorName})` : ''}: ${compositorMessage}`,
    );
  }
}

/** the socket closed (compositor exit, or a malformed message either way) */
export class ConnectionClosedError extends WaylandError {
  override name = 'ConnectionClosedError';
  constructor(detail: string, options?: { cause?: unknown }) {
    super('connection-closed', `the connection to the Wayland compositor closed: ${detail}`, options);
  }
}

/** a message needs descriptors passed and the transport cannot (the plain `net` socket) */
export class FdPassingUnsupportedError extends WaylandError {
  override name = 'FdPassingUnsupportedError';
  constructor(what: string) {
    super('no-fd-passing', `${what} needs file descriptor passing (SCM_RIGHTS), which this transport lacks: use the native transport of the addon`);
  }
}

/** the compositor has no wp_drm_lease_device_v1 global */
export class NoLeaseManagerError extends WaylandError {
  override name = 'NoLeaseManagerError';
  constructor(readonly globals: readonly string[]) {
    super(
      'no-lease-manager',
      'the running compositor offers no DRM leases (no wp_drm_lease_device_v1 global; ' +
        `it advertises ${globals.length} other interfaces). sway (1.7 and later) and KWin offer it only when they ` +
        'drive a DRM device themselves, not when nested in another compositor or headless.',
    );
  }
}

export interface OfferedConnector {
  readonly name: string;
  readonly description: string;
  readonly connectorId: number;
}

/** the connector asked for is not among those offered (or none is offered) */
export class ConnectorNotOfferedError extends WaylandError {
  override name = 'ConnectorNotOfferedError';
  constructor(
    readonly requested: string | undefined,
    readonly offered: readonly OfferedConnector[],
  ) {
    const list = offered.length ? `it offers: ${offered.map((c) => `${c.name} (${c.description})`).join(', ')}` : 'it offers no connector';
    super(
      'connector-not-offered',
      `${requested === undefined ? 'no connector to lease' : `the compositor does not offer ${requested} for lease`}: ${list}. ${NON_DESKTOP_HINT}`,
    );
  }
}

/** the compositor answered the lease request with `finished` before any lease_fd */
export class LeaseRefusedError extends WaylandError {
  override name = 'LeaseRefusedError';
  constructor(readonly connectors: readonly string[]) {
    super(
      'lease-refused',
      `the compositor refused to lease ${connectors.join(', ')} (the offer was withdrawn or leased to another ` +
        'client meanwhile, or the kernel refused the lease; the compositor log says which)',
    );
  }
}

/**
 * A granted lease ended without us: `finished` after lease_fd (the compositor withdrew the
 * output or revoked the lease), or the connection to the compositor closed (it exited: the kernel
 * revokes a lease with its lessor's master)
 */
export class LeaseRevokedError extends WaylandError {
  override name = 'LeaseRevokedError';
  constructor(
    readonly connectors: readonly string[],
    readonly how: 'finished' | 'disconnected' = 'finished',
    detail?: string,
  ) {
    super(
      'lease-revoked',
      how === 'finished'
        ? `the compositor ended the lease of ${connectors.join(', ')} (the monitor was unplugged or the compositor ` +
            'revoked the lease); the display objects of the lease are no longer ours'
        : `the lease of ${connectors.join(', ')} ended with the connection to the compositor (${detail ?? 'it closed'}: ` +
            'the compositor exited or dropped vgpu-flip); the display objects of the lease are no longer ours',
    );
  }
}
