// THE schema of the kiosk configuration (`vgpu-flip kiosk`, issue 9): one zod schema, from which
// configs/vgpu-flip-kiosk.schema.json is generated (`npm run schema`, src/kiosk/schema-file.ts)
// so that editors show the .describe() texts as help. Field formats are in src/kiosk/values.ts;
// what one field cannot say about another (unknown output names, duplicate names, conflicting
// z-orders, "exactly one way to find the VM") is checked in src/kiosk/checks.ts.
import { z } from 'zod';
import {
  ABS_PATH_RE, DEVICE_RE, DOMAIN_RE, GROUP_RE, IDLE_RE, MATCH_RE, MDEV_TYPE_RE, MODE_RE, NAME_RE,
  PARENT_RE, PLACEMENT_RE, UUID_RE, WAYLAND_RE,
  explainBadIdle, explainBadMatch, explainBadMode, explainBadPlacement,
} from './values.js';

type Explain = (s: string) => string | null;

/** a string of one format: the regex goes into the JSON Schema, the explanation into the error */
function formatted(re: RegExp, explain: Explain | string, more?: Explain) {
  const s = z.string().regex(re, {
    error: (iss) => {
      const s = String(iss.input);
      return typeof explain === 'string' ? `"${s}" is not ${explain}` : (explain(s) ?? `"${s}" is not valid here`);
    },
    abort: true,
  });
  // a further check the regex cannot express (ranges); `more` says what is wrong, null when fine
  return more ? s.refine((v) => more(v) === null, { error: (iss) => more(String(iss.input)) ?? 'invalid' }) : s;
}

const name = (what: string) =>
  formatted(NAME_RE, `a valid ${what} name: use letters, digits, "_", "." and "-" (up to 63, starting with a letter or digit)`);
const uuid = () => formatted(UUID_RE, 'a UUID: write 8-4-4-4-12 hex digits, e.g. 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001');
const absPath = (what: string) => formatted(ABS_PATH_RE, `an absolute path to ${what} (it must start with "/")`);

export const PATH_KINDS = ['drm-fb', 'dmabuf', 'region'] as const;
export const PLANE_KINDS = ['primary', 'overlay', 'cursor'] as const;

export const OutputSchema = z
  .strictObject({
    name: name('output').describe('Name of this output in the configuration; VM planes refer to it with `output: NAME`.'),
    match: formatted(MATCH_RE, (s) => explainBadMatch(s))
      .describe(
        'Which monitor this is, as in kanshi: a kernel connector name ("HDMI-A-1", "DP-2", "Virtual-1"; ' +
          'see `vgpu-flip inspect`), an EDID identity "MAKE MODEL SERIAL" (the PNP id, the monitor name ' +
          'and the serial string of the EDID, e.g. "DEL DELL U2415 7MT0186L0LSU"; the product code as ' +
          '0x%04X and the serial number as 0x%08X stand in for missing descriptors, "Unknown" for no serial at all), or `*` for any connected ' +
          'monitor that is not a VR headset. Outputs are matched in file order; a connector is taken by ' +
          'the first output that matches it.',
      ),
    device: formatted(DEVICE_RE, (s) => `"${s}" is not a DRM card: write /dev/dri/card0, card0 or /dev/dri/by-path/...-card`)
      .optional()
      .describe('DRM device of the monitor: /dev/dri/cardN, cardN or /dev/dri/by-path/*-card. Default: the first card with KMS (lowest N).'),
    mode: formatted(MODE_RE, explainBadMode, explainBadMode)
      .default('preferred')
      .describe(
        'Display mode: WIDTHxHEIGHT or WIDTHxHEIGHT@HZ (the closest refresh rate is taken), `preferred` ' +
          '(the monitor\'s preferred mode) or `current` (whatever is set when the daemon starts).',
      ),
    modeset: z
      .boolean()
      .default(true)
      .describe(
        'Whether the daemon may change the mode (an ALLOW_MODESET commit, which blanks the monitor). ' +
          'With false it uses the current mode and refuses to start when that is not `mode`.',
      ),
    idle: formatted(IDLE_RE, explainBadIdle)
      .default('black')
      .describe(
        'What the output shows while its VM is missing, starting or not ready: `black`, a colour ' +
          '"#rrggbb" (quote it: an unquoted # starts a YAML comment), the absolute path of a PNG splash ' +
          '(centred on black), or `keep-last-frame` (the last guest frame stays on screen; without it a ' +
          'stale frame is never shown).',
      ),
    lease: z
      .union([
        z.boolean(),
        z.strictObject({
          wayland: formatted(WAYLAND_RE, 'a Wayland socket: write its name in $XDG_RUNTIME_DIR (wayland-1) or its absolute path (/run/user/1000/wayland-1)')
            .optional()
            .describe('The compositor\'s socket: a name in $XDG_RUNTIME_DIR (e.g. wayland-1) or an absolute path (e.g. /run/user/1000/wayland-1, for a daemon run by systemd). Default: $WAYLAND_DISPLAY (or wayland-0) in $XDG_RUNTIME_DIR, as libwayland finds it.'),
        }),
      ], {
        // an object: what is wrong in it (the object branch's first issue), else the shape
        error: (iss) => {
          const inObject = (iss as { errors?: { message: string; path?: PropertyKey[] }[][] }).errors?.[1]?.[0];
          return typeof iss.input === 'object' && iss.input !== null && inObject
            ? `${inObject.path?.length ? `${inObject.path.join('.')}: ` : ''}${inObject.message}`
            : 'lease must be true, false or { wayland: SOCKET }';
        },
      })
      .optional()
      .describe(
        'Lease this monitor from the running Wayland compositor (wp_drm_lease_v1: sway/wlroots, KWin) instead of ' +
          'opening the card as DRM master: `match` names the connector the compositor offers (or `*`: the only ' +
          'one offered); `device` does not apply. The lease holds the connector, its CRTC and the planes the ' +
          'compositor adds (wlroots: primary and cursor). When the compositor withdraws it, the output stops ' +
          'and is requested again when it is offered again; on exit it is handed back. Compositors offer only ' +
          'non-desktop connectors (VR headsets). `true` uses the default socket.',
      ),
  })
  .describe('One monitor the kiosk drives.');

const paths = z
  .array(z.enum(PATH_KINDS, { error: (iss) => `"${String(iss.input)}" is not a display path: write drm-fb, dmabuf or region` }))
  .min(1, { error: 'list at least one display path (drm-fb, dmabuf, region)' })
  .default([...PATH_KINDS])
  .describe(
    'Display paths to try, in order: drm-fb (the vendor driver\'s host framebuffer, no user-space work ' +
      'per frame), dmabuf (zero-copy import), region (copy of the vGPU\'s video memory). Default: all three in that order.',
  );

const z_order = z
  .int({ error: 'z must be a whole number from 0 to 255' })
  .min(0, { error: 'z must be 0 or more' })
  .max(255, { error: 'z must be 255 or less' })
  .optional()
  .describe(
    'Stacking order on the output (higher is on top; the hardware plane\'s zpos follows it). Default: ' +
      'primary 0, overlay 1, cursor 2. Layers sharing an output need different z values.',
  );

export const ScreenLayerSchema = z
  .strictObject({
    output: name('output').describe('The output (by its `name` in `outputs`) this plane is shown on.'),
    placement: formatted(PLACEMENT_RE, explainBadPlacement)
      .optional()
      .describe(
        'Where the plane goes on the output: `fill` (scaled to the whole output), `center` (unscaled, ' +
          'centred) or "X,Y" (unscaled, top-left corner at X,Y pixels). Default: fill for the primary ' +
          'plane; an overlay plane needs one.',
      ),
    z: z_order,
    paths,
  })
  .describe('Where one guest plane (primary or overlay) is shown.');

export const CursorLayerSchema = z
  .strictObject({
    output: name('output').optional().describe('Must be the output of the VM\'s primary plane (the default): the cursor follows the guest pointer over it.'),
    z: z_order,
    paths,
  })
  .describe('The guest cursor plane; it follows the guest pointer over the primary plane, so it has no placement.');

export const CreateSchema = z
  .strictObject({
    parent: formatted(PARENT_RE, 'an mdev parent: write the device as named under /sys/class/mdev_bus/ (a PCI address such as 0000:00:02.0)')
      .describe('Parent device of the vGPU, as named under /sys/class/mdev_bus/ (e.g. 0000:00:02.0).'),
    type: formatted(MDEV_TYPE_RE, 'an mdev type: write a name listed in the parent\'s mdev_supported_types (e.g. i915-GVTg_V5_4)')
      .describe('mdev type to create, as listed in the parent\'s mdev_supported_types (e.g. i915-GVTg_V5_4, vgpu_sim-small).'),
    uuid: uuid().optional().describe('UUID to create it with (so the VMM can be told it). Default: a new random UUID.'),
  })
  .describe('Create the vGPU at start (and remove it on exit; only a vGPU the daemon created is removed).');

export const VmSchema = z
  .strictObject({
    name: name('VM').describe('Name of this VM in the configuration (logs, control socket).'),
    domain: formatted(DOMAIN_RE, 'a libvirt domain name')
      .optional()
      .describe('Find the VM as a libvirt domain: its QEMU pid and vGPU from libvirt\'s runtime files NAME.pid and NAME.xml (in /run/libvirt/qemu, or libvirt: run-dir:).'),
    pidfile: absPath('a pid file')
      .optional()
      .describe('Find the VM through the pid file of its VMM (QEMU -pidfile); the VMM holds the VFIO group.'),
    mdev: uuid()
      .optional()
      .describe('Use this existing vGPU (mdev UUID) directly: the daemon opens and owns its VFIO group, so no VMM may hold it.'),
    create: CreateSchema.optional(),
    vgpu: uuid()
      .optional()
      .describe('With domain or pidfile: which of the VMM\'s display vGPUs to show, when it has several.'),
    planes: z
      .strictObject({
        primary: ScreenLayerSchema.optional(),
        overlay: ScreenLayerSchema.optional(),
        cursor: CursorLayerSchema.optional(),
      })
      .describe('The guest planes to show and where; at least `primary`.'),
  })
  .meta({
    oneOf: [
      { required: ['domain'] },
      { required: ['pidfile'] },
      { required: ['mdev'] },
      { required: ['create'] },
    ],
  })
  .describe('One VM whose vGPU planes are shown. Give exactly one of domain, pidfile, mdev, create.');

export const KioskConfigSchema = z
  .strictObject({
    version: z.literal(1, { error: 'version must be 1 (the only version of this format so far)' })
      .describe('Version of this file format; 1.'),
    outputs: z
      .array(OutputSchema)
      .min(1, { error: 'list at least one output' })
      .describe('The monitors, matched in this order.'),
    vms: z.array(VmSchema).default([]).describe('The VMs and where their planes go.'),
    control: z
      .strictObject({
        socket: absPath('a socket')
          .default('/run/vgpu-flip/kiosk.sock')
          .describe('Path of the control socket (status, reload).'),
        group: formatted(GROUP_RE, 'a group: write a Unix group name or a numeric gid')
          .optional()
          .describe('Unix group (name or gid) allowed to use the control socket besides root (socket mode 0660). Default: root only (0600).'),
      })
      .default({ socket: '/run/vgpu-flip/kiosk.sock' })
      .describe('The control socket.'),
    libvirt: z
      .strictObject({
        'run-dir': absPath('a directory')
          .optional()
          .describe('libvirt\'s qemu runtime directory, where a running domain NAME has NAME.pid and NAME.xml. Default: /run/libvirt/qemu (qemu:///system; qemu:///session uses $XDG_RUNTIME_DIR/libvirt/qemu/run).'),
      })
      .optional()
      .describe('Where VMs given as `domain:` are looked up.'),
    log: z
      .strictObject({
        format: z.enum(['text', 'pretty', 'json'], { error: 'log format must be json, pretty or text' }).default('text')
          .describe('pretty (or text, the same): one readable line per event; json: one JSON object per line (pino), for the journal and log collectors.'),
        level: z.enum(['error', 'warn', 'info', 'debug'], { error: 'log level must be error, warn, info or debug' })
          .default('info')
          .describe('Least severe level logged.'),
      })
      .default({ format: 'text', level: 'info' })
      .describe('Logging (to stderr; under systemd, the journal).'),
  })
  .describe('vgpu-flip kiosk configuration: which VM planes are shown on which monitors.');

/** the configuration as written (what the YAML may leave out is optional) */
export type KioskConfigInput = z.input<typeof KioskConfigSchema>;
/** the configuration with defaults filled in */
export type KioskConfigRaw = z.output<typeof KioskConfigSchema>;
export type PathKind = (typeof PATH_KINDS)[number];
export type PlaneKind = (typeof PLANE_KINDS)[number];
