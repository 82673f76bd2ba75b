// The kiosk configuration layer (src/kiosk/): YAML -> schema -> cross-field checks -> model.
// Every bad configuration is asserted with its exact file:line:column, YAML path and message.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfigFile, loadConfigText } from '../../src/kiosk/load.js';
import { formatProblem } from '../../src/kiosk/problems.js';

const root = path.resolve(import.meta.dirname, '../..');

/** the problems of a configuration as the CLI prints them */
function problems(text: string): string[] {
  const r = loadConfigText('k.yaml', text);
  return r.problems.map(formatProblem);
}

const y = (...lines: string[]): string => lines.join('\n') + '\n';

const OUTPUTS = ['version: 1', 'outputs:', '  - name: main', '    match: HDMI-A-1'];

describe('kiosk config: valid files', () => {
  it('a minimal configuration resolves with its defaults', () => {
    const r = loadConfigText('k.yaml', y(...OUTPUTS, 'vms:', '  - name: w', '    domain: win10', '    planes:', '      primary: { output: main }', '      cursor: {}'));
    expect(r.problems).toEqual([]);
    expect(r.config).toEqual({
      version: 1,
      outputs: [{ name: 'main', match: { kind: 'connector', name: 'HDMI-A-1' }, device: null, mode: { kind: 'preferred' }, modeset: true, idle: { kind: 'black' }, lease: null }],
      vms: [{
        name: 'w',
        source: { kind: 'domain', domain: 'win10' },
        layers: [
          { vm: 'w', plane: 'primary', output: 'main', placement: { kind: 'fill' }, z: 0, paths: ['drm-fb', 'dmabuf', 'region'] },
          { vm: 'w', plane: 'cursor', output: 'main', placement: null, z: 2, paths: ['drm-fb', 'dmabuf', 'region'] },
        ],
      }],
      control: { socket: '/run/vgpu-flip/kiosk.sock', group: null },
      log: { format: 'text', level: 'info' },
    });
  });

  it('parses every string format into plain data', () => {
    const r = loadConfigText('k.yaml', y(
      'version: 1',
      'outputs:',
      '  - { name: a, match: "*", device: card1, mode: 2560x1440@59.951, idle: "#1A2b3C", modeset: false }',
      '  - { name: b, match: "DEL  DELL U2415 7MT0186L0LSU", mode: current, idle: /etc/vgpu-flip/splash.PNG }',
      'vms:',
      '  - name: v',
      '    create: { parent: "0000:00:02.0", type: i915-GVTg_V5_4, uuid: 83B8F4F2-509F-382F-3C1E-E6BFE0FA1001 }',
      '    planes:',
      '      primary: { output: a, placement: "10, 20", z: 7, paths: [region] }',
      '      overlay: { output: a, placement: center, z: 9 }',
    ));
    expect(r.problems).toEqual([]);
    const c = r.config!;
    expect(c.outputs[0]).toEqual({ name: 'a', match: { kind: 'any' }, device: '/dev/dri/card1', mode: { kind: 'size', width: 2560, height: 1440, refresh: 59.951 }, modeset: false, idle: { kind: 'color', rgb: 0x1a2b3c, text: '#1a2b3c' }, lease: null });
    expect(c.outputs[1]!.match).toEqual({ kind: 'edid', identity: 'DEL DELL U2415 7MT0186L0LSU' });
    expect(c.outputs[1]!.idle).toEqual({ kind: 'splash', path: '/etc/vgpu-flip/splash.PNG' });
    expect(c.vms[0]!.source).toEqual({ kind: 'create', parent: '0000:00:02.0', type: 'i915-GVTg_V5_4', uuid: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001' });
    expect(c.vms[0]!.layers.map((l) => [l.plane, l.placement, l.z, l.paths])).toEqual([
      ['primary', { kind: 'position', x: 10, y: 20 }, 7, ['region']],
      ['overlay', { kind: 'center' }, 9, ['drm-fb', 'dmabuf', 'region']],
    ]);
  });

  const examples = readdirSync(path.join(root, 'configs')).filter((f) => /^kiosk-.*\.yaml$/.test(f));
  it('configs/ has the five examples', () => {
    expect(examples.sort()).toEqual(['kiosk-lease.yaml', 'kiosk-pip.yaml', 'kiosk-side-by-side.yaml', 'kiosk-single.yaml', 'kiosk-two-monitors.yaml']);
  });
  it.each(examples)('configs/%s is valid', (f) => {
    const r = loadConfigFile(path.join(root, 'configs', f));
    expect(r.problems.map(formatProblem)).toEqual([]);
    expect(r.ok).toBe(true);
  });
  it('the examples say what they claim', () => {
    const load = (f: string) => loadConfigFile(path.join(root, 'configs', f)).config!;
    const single = load('kiosk-single.yaml');
    expect(single.vms.map((v) => v.layers.map((l) => `${l.output}:${l.plane}:${l.placement?.kind ?? 'pointer'}`))).toEqual([['screen:primary:fill', 'screen:cursor:pointer']]);
    const side = load('kiosk-side-by-side.yaml');
    expect(side.vms.map((v) => v.layers[0]!.placement)).toEqual([{ kind: 'position', x: 0, y: 0 }, { kind: 'position', x: 1720, y: 0 }]);
    const pip = load('kiosk-pip.yaml');
    expect(pip.vms.flatMap((v) => v.layers).sort((a, b) => a.z - b.z).map((l) => `${l.vm}/${l.plane}`)).toEqual(['main/primary', 'camera/primary', 'camera/cursor', 'main/cursor']);
    const two = load('kiosk-two-monitors.yaml');
    expect(two.vms.map((v) => v.layers[0]!.output)).toEqual(['left', 'right']);
    expect(two.outputs.map((o) => o.match.kind)).toEqual(['connector', 'edid']);
  });
});

describe('kiosk config: YAML errors', () => {
  it('a syntax error: line, column, and only the YAML problems', () => {
    expect(problems(y('version: 1', 'outputs:', '  - name: main', '    match: [HDMI-A-1', 'vms: []'))).toEqual([
      'k.yaml:5:1: (top level): YAML error: Flow sequence in block collection must be sufficiently indented and end with a ]; check the indentation (spaces only, the same depth for siblings)',
    ]);
  });
  it('duplicate keys', () => {
    expect(problems(y(...OUTPUTS, '    match: DP-1'))).toEqual([
      'k.yaml:5:5: (top level): YAML error: Map keys must be unique; remove or rename one of them',
    ]);
  });
  it('an empty file and a file that is not a mapping', () => {
    expect(problems('')).toEqual(['k.yaml:1:1: (top level): the file is empty, not a mapping: start it with `version: 1`, then `outputs:` and `vms:`']);
    expect(problems('- a\n')).toEqual(['k.yaml:1:1: (top level): the file is a list, not a mapping: start it with `version: 1`, then `outputs:` and `vms:`']);
  });
  it('tabs', () => {
    expect(problems('version: 1\noutputs:\n\t- name: a\n')[0]).toMatch(/^k\.yaml:3:1: \(top level\): YAML error: /);
  });
});

describe('kiosk config: schema problems, every one at its line:column', () => {
  it('lists every problem of a file at once, in file order', () => {
    expect(problems(y(
      'version: 2',
      'outputs:',
      '  - name: main',
      '    match: HDMI1',
      '    mode: 1920x1080x60',
      '    idle: #203040',
      '    modes: preferred',
      '    modeset: yes',
      'vms:',
      '  - name: w',
      '    mdev: 83b8f4f2-509f-382f-3c1e',
      '    planes:',
      '      primary: { output: main, placement: centre, z: 1.5, paths: [drmfb] }',
      '      cursor: { placement: fill }',
      'log: { format: xml }',
    ))).toEqual([
      'k.yaml:1:10: version: version must be 1 (the only version of this format so far) (got the number 2)',
      'k.yaml:4:12: outputs[0].match: "HDMI1" is not a kernel connector name: they look like HDMI-A-1, DP-2, eDP-1, Virtual-1 (see `vgpu-flip inspect`); write `*` for any monitor or "MAKE MODEL SERIAL" for one EDID identity',
      'k.yaml:5:11: outputs[0].mode: "1920x1080x60" is not a mode: write WIDTHxHEIGHT (1920x1080), WIDTHxHEIGHT@HZ (1920x1080@60, 2560x1440@59.951), `preferred` (the monitor\'s preferred mode) or `current` (keep what is set)',
      'k.yaml:6:11: outputs[0].idle: has no value; an unquoted # starts a YAML comment: quote the value ("#203040")',
      'k.yaml:7:5: outputs[0].modes: unknown key "modes"; did you mean "mode"? (allowed here: name, match, device, mode, modeset, idle, lease)',
      'k.yaml:8:14: outputs[0].modeset: expected true or false, got the string "yes"',
      'k.yaml:11:11: vms[0].mdev: "83b8f4f2-509f-382f-3c1e" is not a UUID: write 8-4-4-4-12 hex digits, e.g. 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001',
      'k.yaml:13:43: vms[0].planes.primary.placement: "centre": write `center` (as in `vgpu-flip assign --center`)',
      'k.yaml:13:54: vms[0].planes.primary.z: z must be a whole number from 0 to 255 (got the number 1.5)',
      'k.yaml:13:67: vms[0].planes.primary.paths[0]: "drmfb" is not a display path: write drm-fb, dmabuf or region',
      'k.yaml:14:17: vms[0].planes.cursor.placement: unknown key "placement": the cursor follows the guest pointer over the primary plane; remove it',
      'k.yaml:15:16: log.format: log format must be json, pretty or text (got the string "xml")',
    ]);
  });

  it('missing keys are reported at the mapping that lacks them', () => {
    expect(problems(y('version: 1', 'outputs:', '  - name: main', 'vms:', '  - domain: x', '    planes:', '      primary: { placement: fill }'))).toEqual([
      expect.stringMatching(/^k\.yaml:3:5: outputs\[0\]\.match: missing "match" \(match: Which monitor this is, as in kanshi: /),
      expect.stringMatching(/^k\.yaml:5:5: vms\[0\]\.name: missing "name" \(name: Name of this VM/),
      expect.stringMatching(/^k\.yaml:7:16: vms\[0\]\.planes\.primary\.output: missing "output" \(output: The output/),
    ]);
    expect(problems('version: 1\n')).toEqual([expect.stringMatching(/^k\.yaml:1:1: outputs: missing "outputs" \(outputs: The monitors/)]);
  });

  it('bad modes', () => {
    const at = (mode: string) => problems(y(...OUTPUTS, `    mode: "${mode}"`));
    expect(at('1920x1080@')).toEqual([expect.stringMatching(/^k\.yaml:5:11: outputs\[0\]\.mode: "1920x1080@" is not a mode: write WIDTHxHEIGHT/)]);
    expect(at('1920X1080')).toEqual([expect.stringMatching(/^k\.yaml:5:11: outputs\[0\]\.mode: "1920X1080" is not a mode/)]);
    expect(at('0x1080')).toEqual([expect.stringMatching(/"0x1080" is not a mode/)]);
    expect(at('20000x1080')).toEqual(['k.yaml:5:11: outputs[0].mode: "20000x1080": width and height must be 16384 or less']);
    expect(at('1920x1080@2000')).toEqual(['k.yaml:5:11: outputs[0].mode: "1920x1080@2000": the refresh rate must be 1000 Hz or less']);
    expect(at('1920x1080@59.94')).toEqual([]);
  });

  it('bad idle contents, devices, names and paths', () => {
    expect(problems(y(...OUTPUTS, '    idle: "#12345"'))).toEqual(['k.yaml:5:11: outputs[0].idle: "#12345" is not a colour: write #rrggbb with six hex digits, quoted ("#1a2b3c")']);
    expect(problems(y(...OUTPUTS, '    idle: splash.png'))).toEqual(['k.yaml:5:11: outputs[0].idle: "splash.png": a splash image needs an absolute path (/etc/vgpu-flip/splash.png)']);
    expect(problems(y(...OUTPUTS, '    idle: stale'))).toEqual(['k.yaml:5:11: outputs[0].idle: "stale" is not an idle content: write black, keep-last-frame, a colour "#rrggbb" (quoted) or the absolute path of a PNG splash']);
    expect(problems(y(...OUTPUTS, '    device: /dev/dri/renderD128'))).toEqual(['k.yaml:5:13: outputs[0].device: "/dev/dri/renderD128" is not a DRM card: write /dev/dri/card0, card0 or /dev/dri/by-path/...-card']);
    expect(problems(y('version: 1', 'outputs:', '  - name: "my screen"', '    match: "*"'))).toEqual([
      'k.yaml:3:11: outputs[0].name: "my screen" is not a valid output name: use letters, digits, "_", "." and "-" (up to 63, starting with a letter or digit)',
    ]);
    expect(problems(y(...OUTPUTS, 'control: { socket: /run/x/, group: "Bad Group" }'))).toEqual([
      'k.yaml:5:20: control.socket: "/run/x/" is not an absolute path to a socket (it must start with "/")',
      'k.yaml:5:36: control.group: "Bad Group" is not a group: write a Unix group name or a numeric gid',
    ]);
  });

  it('EDID identities and connector names', () => {
    expect(problems(y('version: 1', 'outputs:', '  - { name: a, match: "DELL U2415" }'))).toEqual([
      'k.yaml:3:23: outputs[0].match: "DELL U2415" is neither `*`, a connector name (HDMI-A-1) nor an EDID identity "MAKE MODEL SERIAL" (three words or more, e.g. "DEL DELL U2415 7MT0186L0LSU")',
    ]);
    expect(problems(y('version: 1', 'outputs:', '  - { name: a, match: "HDMI-A-1 DELL U2415" }'))).toEqual([
      'k.yaml:3:23: outputs[0].match: "HDMI-A-1 DELL U2415" starts with a connector name but has spaces: write the connector alone (HDMI-A-1) or an EDID identity "MAKE MODEL SERIAL"',
    ]);
  });
});

const VM = (name: string, src: string, ...planes: string[]) => [`  - name: ${name}`, `    ${src}`, '    planes:', ...planes.map((p) => `      ${p}`)];

describe('kiosk config: leased outputs', () => {
  const leased = (...out: string[]): string =>
    y('version: 1', 'outputs:', '  - name: hmd', ...out, 'vms:', '  - name: v', '    mdev: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', '    planes:', '      primary: { output: hmd }');
  it('lease: true, lease: { wayland }, lease: false', () => {
    expect(loadConfigText('k.yaml', leased('    match: DP-2', '    lease: true')).config!.outputs[0]!.lease).toEqual({ wayland: null });
    expect(loadConfigText('k.yaml', leased('    match: "*"', '    lease: { wayland: /run/user/1000/wayland-1 }')).config!.outputs[0]).toMatchObject({ match: { kind: 'any' }, lease: { wayland: '/run/user/1000/wayland-1' } });
    expect(loadConfigText('k.yaml', leased('    match: DP-2', '    lease: { wayland: wayland-1 }')).config!.outputs[0]!.lease).toEqual({ wayland: 'wayland-1' });
    expect(loadConfigText('k.yaml', leased('    match: DP-2', '    lease: false')).config!.outputs[0]!.lease).toBeNull();
  });
  it('a leased output has no device and is not matched by EDID identity; a bad socket is said', () => {
    expect(problems(leased('    match: DP-2', '    device: card1', '    lease: true'))).toEqual([
      "k.yaml:5:13: outputs[0].device: a leased output is on the compositor's DRM device: remove device (or lease)",
    ]);
    expect(problems(leased('    match: "HVR HTC-VIVE 0x00000001"', '    lease: true'))[0]).toMatch(/^k\.yaml:4:12: outputs\[0\]\.match: .*a leased output is matched by the connector name the compositor offers/);
    expect(problems(leased('    match: DP-2', '    lease: { wayland: "wl/0/" }'))[0]).toMatch(/outputs\[0\]\.lease.*: "wl\/0\/" is not a Wayland socket/);
    expect(problems(leased('    match: DP-2', '    lease: yes-please'))[0]).toMatch(/outputs\[0\]\.lease: lease must be true, false or \{ wayland: SOCKET \}/);
  });
});

describe('kiosk config: cross-field checks', () => {
  it('duplicate names, with where the first one is', () => {
    expect(problems(y(...OUTPUTS, '  - name: main', '    match: DP-1', 'vms:', ...VM('a', 'domain: a', 'primary: { output: main }'), ...VM('a', 'domain: b', 'primary: { output: main, z: 1, placement: "0,0" }')))).toEqual([
      'k.yaml:5:11: outputs[1].name: duplicate output name "main": outputs[0] (line 3) has it too; give each output its own name',
      'k.yaml:12:11: vms[1].name: duplicate VM name "a": vms[0] (line 8) has it too; give each VM its own name',
    ]);
  });

  it('a plane naming an unknown output, with a suggestion', () => {
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: mian }')))).toEqual([
      'k.yaml:9:26: vms[0].planes.primary.output: unknown output "mian"; did you mean "main"? (the outputs are: main); name one of them or add an output named "mian"',
    ]);
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main }', 'cursor: { output: other }')))).toEqual([
      'k.yaml:10:25: vms[0].planes.cursor.output: unknown output "other" (the outputs are: main); name one of them or add an output named "other"',
    ]);
  });

  it('how to find a VM: exactly one way, no vGPU claimed twice', () => {
    expect(problems(y(...OUTPUTS, 'vms:', '  - name: a', '    planes: { primary: { output: main } }'))).toEqual([
      'k.yaml:6:5: vms[0]: VM a says nothing about how to find it: add one of domain: NAME, pidfile: PATH, mdev: UUID or create: { parent, type }',
    ]);
    expect(problems(y(...OUTPUTS, 'vms:', '  - name: a', '    domain: a', '    pidfile: /run/a.pid', '    vgpu: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', '    planes: { primary: { output: main } }'))).toEqual([
      'k.yaml:8:5: vms[0].pidfile: "pidfile" and "domain" are both given: a VM is found exactly one way; keep one of domain, pidfile, mdev, create',
    ]);
    expect(problems(y(...OUTPUTS, 'vms:', '  - name: a', '    mdev: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', '    vgpu: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', '    planes: { primary: { output: main } }'))).toEqual([
      'k.yaml:8:5: vms[0].vgpu: "vgpu" picks one of a VMM\'s vGPUs (with domain or pidfile); with mdev the vGPU is already named: remove it',
      'k.yaml:8:11: vms[0].vgpu: vGPU 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 is also used by vms[0] (line 7): one vGPU (or VMM) can be shown by one VM entry only',
    ]);
    expect(problems(y(
      'version: 1', 'outputs:', '  - { name: l, match: HDMI-A-1 }', '  - { name: r, match: HDMI-A-2 }', 'vms:',
      ...VM('a', 'mdev: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', 'primary: { output: l }'),
      ...VM('b', 'create: { parent: "0000:00:02.0", type: t, uuid: 83B8F4F2-509F-382F-3C1E-E6BFE0FA1001 }', 'primary: { output: r }'),
      ...VM('c', 'domain: x', 'primary: { output: r, z: 1, placement: center }'),
      ...VM('d', 'domain: x', 'primary: { output: r, z: 2, placement: "0,0" }'),
    ))).toEqual([
      'k.yaml:11:54: vms[1].create.uuid: vGPU 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 is also used by vms[0] (line 7): one vGPU (or VMM) can be shown by one VM entry only',
      'k.yaml:19:13: vms[3].domain: libvirt domain "x" is also used by vms[2] (line 15): one vGPU (or VMM) can be shown by one VM entry only',
    ]);
  });

  it('planes: a primary is needed, an overlay needs a placement, the cursor stays with the primary', () => {
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'cursor: {}')))).toEqual([
      'k.yaml:9:7: vms[0].planes: VM a shows no primary plane: add planes.primary with an output (the cursor and overlay planes go over it)',
    ]);
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main }', 'overlay: { output: main }')))).toEqual([
      'k.yaml:10:16: vms[0].planes.overlay: the overlay plane of VM a needs a placement ("X,Y" or center): filling the output would hide the planes under it',
    ]);
    expect(problems(y(...OUTPUTS, '  - { name: side, match: DP-1 }', 'vms:', ...VM('a', 'domain: a', 'primary: { output: main }', 'cursor: { output: side }')))).toEqual([
      'k.yaml:11:25: vms[0].planes.cursor.output: the cursor of VM a is on output "side" but its primary plane on "main": the cursor follows the pointer over the primary plane; remove cursor.output or make it "main"',
    ]);
  });

  it('two VMs claiming the same output slot: the same z, a fill above another plane, the same position', () => {
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main, placement: "0,0" }'), ...VM('b', 'domain: b', 'primary: { output: main, placement: "960,0" }')))).toEqual([
      'k.yaml:13:16: vms[1].planes.primary: VM b primary and VM a primary (line 9) are both at z 0 (the default) on output "main": planes sharing an output need different z values; set z on one of them',
    ]);
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main, placement: "0,0", z: 5 }'), ...VM('b', 'domain: b', 'primary: { output: main, z: 6 }')))).toEqual([
      'k.yaml:13:16: vms[1].planes.primary: VM b primary fills output "main" at z 6, above VM a primary (z 5, line 9), which would never be visible: place it ("X,Y" or center) or give it a lower z',
    ]);
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main, placement: "100,100", z: 1 }'), ...VM('b', 'domain: b', 'primary: { output: main, placement: "100, 100", z: 1 }')))).toEqual([
      'k.yaml:13:58: vms[1].planes.primary.z: VM b primary and VM a primary (line 9) are both at z 1 on output "main": planes sharing an output need different z values; set z on one of them',
    ]);
    // a cursor under its own VM's filling primary is hidden too; the default z puts it on top
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main, z: 3 }', 'cursor: { z: 1 }')))).toEqual([
      'k.yaml:9:16: vms[0].planes.primary: VM a primary fills output "main" at z 3, above VM a cursor (z 1, line 10), which would never be visible: place it ("X,Y" or center) or give it a lower z',
    ]);
  });

  it('identical positions of two VMs on one output', () => {
    expect(problems(y(...OUTPUTS, 'vms:', ...VM('a', 'domain: a', 'primary: { output: main, placement: "100,100", z: 1 }'), ...VM('b', 'domain: b', 'primary: { output: main, placement: "100,100", z: 3 }')))).toEqual([
      'k.yaml:13:43: vms[1].planes.primary.placement: VM b primary and VM a primary (line 9) are both placed at 100,100 on output "main": one would cover the other; move one of them',
    ]);
  });

  it('a position outside an output of fixed size', () => {
    expect(problems(y(...OUTPUTS, '    mode: 1920x1080', 'vms:', ...VM('a', 'domain: a', 'primary: { output: main, placement: "1920,0" }')))).toEqual([
      'k.yaml:10:43: vms[0].planes.primary.placement: 1920,0 is outside output "main" (1920x1080): VM a primary would not be visible; X must be below 1920 and Y below 1080',
    ]);
  });

  it('two outputs matching the same monitor', () => {
    expect(problems(y(...OUTPUTS, '  - { name: b, match: HDMI-A-1 }', '  - { name: c, match: HDMI-A-1, device: card1 }', '  - { name: d, match: "*" }', '  - { name: e, match: "*" }'))).toEqual([
      'k.yaml:5:23: outputs[1].match: outputs[0] (line 4) already matches HDMI-A-1 on the same device, so this output would never match; remove one or match another monitor',
    ]);
  });

  it('schema problems and cross-field problems come together', () => {
    expect(problems(y(...OUTPUTS, '    mode: big', 'vms:', ...VM('a', 'domain: a', 'primary: { output: nope }')))).toEqual([
      expect.stringMatching(/^k\.yaml:5:11: outputs\[0\]\.mode: "big" is not a mode/),
      'k.yaml:10:26: vms[0].planes.primary.output: unknown output "nope" (the outputs are: main); name one of them or add an output named "nope"',
    ]);
  });
});

describe('kiosk config: the JSON Schema file', () => {
  it('configs/vgpu-flip-kiosk.schema.json is what `npm run schema` generates (run it after changing src/kiosk/schema.ts)', async () => {
    const { schemaFileText, SCHEMA_FILE } = await import('../../src/kiosk/schema-file.js');
    const committed = readFileSync(path.join(root, SCHEMA_FILE), 'utf8');
    expect(committed, 'stale: run `npm run schema` and commit configs/vgpu-flip-kiosk.schema.json').toBe(schemaFileText());
  });

  it('every field is documented and every pattern compiles as editors compile it (Unicode mode)', async () => {
    const { kioskJsonSchema } = await import('../../src/kiosk/schema-file.js');
    const undocumented: string[] = [];
    const walk = (s: unknown, at: string): void => {
      if (typeof s !== 'object' || s === null) return;
      const o = s as Record<string, unknown>;
      if (typeof o['pattern'] === 'string') expect(() => new RegExp(o['pattern'] as string, 'u'), at).not.toThrow();
      if (o['properties']) {
        for (const [k, v] of Object.entries(o['properties'] as Record<string, unknown>)) {
          if (!(v as { description?: string }).description) undocumented.push(`${at}.${k}`);
          walk(v, `${at}.${k}`);
        }
      }
      if (o['items']) walk(o['items'], `${at}[]`);
    };
    walk(kioskJsonSchema(), '$');
    expect(undocumented).toEqual([]);
  });
});
