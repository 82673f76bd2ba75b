// The "VMM + guest" child of test/kernel/sample-vmm.ts (plain CommonJS: it runs under bare
// node, not vitest). It opens an mdev of the kernel's sample vGPU drivers as QEMU does (type1v2
// container, group, device by name, with the project's addon), keeps the fds for its whole life,
// and plays the guest display driver:
//   mbochs: programs a mode through the bochs DISPI registers (BAR2 + 0x500, 16-bit, index =
//           (offset - 0x500) / 2) and draws into video memory through an mmap of BAR0
//           (pwrite to BAR0 lands 8192 bytes off: mbochs.c subtracts the MMIO BAR offset)
//   mdpy:   reads its fixed mode from the vendor capability in PCI config space (format,
//           width, height at 0x44/0x48/0x4c) and draws through an mmap of its display region
//           (pwrite to it always lands at offset 0: mdpy.c ignores the position)
// Protocol: one JSON object per line. After opening it prints
//   {"ready":true,"pid":N,"handles":{container,group,device,groupId},"driver":...,"regions":{...}}
// then answers each request {"id":N,"op":...} with {"id":N,"ok":true,...} or {"id":N,"ok":false,"error":"..."}.
// Ops: mode {width,height,bpp?,virtWidth?,virtHeight?,x?,y?} (mbochs), pan {x,y} (mbochs: a
//      page flip, only X_OFFSET/Y_OFFSET change), disable (mbochs), regs (mbochs: the DISPI
//      registers as read back), draw {file, at?} (raw XRGB8888, width*4 per row, of the current
//      mode's size; into the shown buffer, or the one at byte `at` of video memory), fill
//      {color}, peek {offset,length} (base64 of video memory through the mmap), exit.
//      stdin EOF: exit.
'use strict';
const fs = require('node:fs');
const readline = require('node:readline');

const [addonPath, groupArg, uuid, driver] = process.argv.slice(2);
const a = require(addonPath);

const DISPI = { ID: 0, XRES: 1, YRES: 2, BPP: 3, ENABLE: 4, BANK: 5, VIRT_WIDTH: 6, VIRT_HEIGHT: 7, X_OFFSET: 8, Y_OFFSET: 9, VIDEO_MEMORY_64K: 10 };
const VBE_DISPI_ENABLED = 0x01;
const VBE_DISPI_LFB_ENABLED = 0x40;
const VFIO_PCI_CONFIG_REGION_INDEX = 7; // BAR0..5 are 0..5, ROM 6, config 7, VGA 8
const MDPY_DISPLAY_REGION = 16;
const DRM_FORMAT_XRGB8888 = 0x34325258;

function out(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

const h = a.vfioOpenMdev(Number(groupArg), uuid);
const dev = h.device;
const regions = {};
let vram; // the guest's view of video memory (a MAP_SHARED mapping of BAR0 / the display region)
let vramBytes;
let fb = null; // { width, height, stride, offset, format }

function regionJson(r) {
  return { index: r.index, flags: r.flags, offset: Number(r.offset), size: Number(r.size) };
}

if (driver === 'mbochs') {
  regions.bar0 = regionJson(a.vfioRegionInfo(dev, 0));
  regions.bar2 = regionJson(a.vfioRegionInfo(dev, 2));
  const m = a.mmap(dev, BigInt(regions.bar0.offset), regions.bar0.size, true);
  vram = m;
  vramBytes = Buffer.from(m.buffer, 0, m.length);
} else if (driver === 'mdpy') {
  regions.config = regionJson(a.vfioRegionInfo(dev, VFIO_PCI_CONFIG_REGION_INDEX));
  regions.display = regionJson(a.vfioRegionInfo(dev, MDPY_DISPLAY_REGION));
  const cfg = a.pread(dev, BigInt(regions.config.offset) + 0x44n, 12);
  const width = cfg.readUInt32LE(4);
  fb = { format: cfg.readUInt32LE(0), width, height: cfg.readUInt32LE(8), stride: width * 4, offset: 0 };
  const m = a.mmap(dev, BigInt(regions.display.offset), regions.display.size, true);
  vram = m;
  vramBytes = Buffer.from(m.buffer, 0, m.length);
} else {
  throw new Error(`unknown driver ${driver} (mbochs or mdpy)`);
}

function dispiWrite(index, value) {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value & 0xffff);
  const n = a.pwrite(dev, BigInt(regions.bar2.offset + 0x500 + index * 2), b);
  if (n !== 2) throw new Error(`DISPI write of register ${index}: pwrite wrote ${n} bytes`);
}

function dispiRead(index) {
  return a.pread(dev, BigInt(regions.bar2.offset + 0x500 + index * 2), 2).readUInt16LE(0);
}

function regs() {
  const r = {};
  for (const [k, i] of Object.entries(DISPI)) r[k] = dispiRead(i);
  return r;
}

/** What bochs-drm does for a mode set: disable, program, enable with the linear framebuffer. */
function setMode(o) {
  if (driver !== 'mbochs') throw new Error(`${driver} has a fixed mode`);
  const bpp = o.bpp ?? 32;
  const virtWidth = o.virtWidth ?? o.width;
  const virtHeight = o.virtHeight ?? o.height;
  const x = o.x ?? 0;
  const y = o.y ?? 0;
  dispiWrite(DISPI.ENABLE, 0);
  dispiWrite(DISPI.BPP, bpp);
  dispiWrite(DISPI.XRES, o.width);
  dispiWrite(DISPI.YRES, o.height);
  dispiWrite(DISPI.BANK, 0);
  dispiWrite(DISPI.VIRT_WIDTH, virtWidth);
  dispiWrite(DISPI.VIRT_HEIGHT, virtHeight);
  dispiWrite(DISPI.X_OFFSET, x);
  dispiWrite(DISPI.Y_OFFSET, y);
  dispiWrite(DISPI.ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
  const bytepp = bpp / 8;
  const stride = Math.max(virtWidth, o.width) * bytepp;
  fb = { format: DRM_FORMAT_XRGB8888, width: o.width, height: o.height, stride, offset: x * bytepp + y * stride };
  return { fb, size: stride * o.height, regs: regs() };
}

/** a page flip as bochs-drm does it: only the DISPI offsets change */
function pan(x, y) {
  const f = needFb();
  dispiWrite(DISPI.X_OFFSET, x);
  dispiWrite(DISPI.Y_OFFSET, y);
  fb = { ...f, offset: x * 4 + y * f.stride };
  return { fb, regs: regs() };
}

function needFb() {
  if (!fb) throw new Error('no mode set yet (op mode first)');
  return fb;
}

/** the whole frame into the current framebuffer, or into the buffer at byte `at` of video memory (a back buffer) */
function draw(pixels, at) {
  const f = at === undefined ? needFb() : { ...needFb(), offset: at };
  const row = f.width * 4;
  if (pixels.length < row * f.height) throw new Error(`draw: ${pixels.length} bytes, the mode needs ${row * f.height}`);
  if (f.offset + f.stride * (f.height - 1) + row > vramBytes.length) throw new Error('draw: the framebuffer does not fit the video memory');
  for (let y = 0; y < f.height; y++) pixels.copy(vramBytes, f.offset + y * f.stride, y * row, y * row + row);
  return { bytes: row * f.height };
}

function fill(color) {
  const f = needFb();
  const row = Buffer.alloc(f.width * 4);
  for (let x = 0; x < f.width; x++) row.writeUInt32LE((0xff000000 | color) >>> 0, x * 4);
  for (let y = 0; y < f.height; y++) row.copy(vramBytes, f.offset + y * f.stride);
  return { bytes: row.length * f.height };
}

function handle(req) {
  switch (req.op) {
    case 'mode':
      return setMode(req);
    case 'disable':
      dispiWrite(DISPI.ENABLE, 0);
      fb = null;
      return { regs: regs() };
    case 'regs':
      return { regs: regs() };
    case 'draw':
      return draw(fs.readFileSync(req.file), req.at);
    case 'pan':
      return pan(req.x ?? 0, req.y ?? 0);
    case 'fill':
      return fill(req.color);
    case 'peek':
      return { data: vramBytes.subarray(req.offset, req.offset + req.length).toString('base64') };
    case 'exit':
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

out({ ready: true, pid: process.pid, handles: h, driver, regions, fb });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    out({ id: null, ok: false, error: `bad request: ${e.message}` });
    return;
  }
  try {
    out({ id: req.id, ok: true, ...handle(req) });
  } catch (e) {
    out({ id: req.id, ok: false, error: e.message, code: e.code, op: e.op });
  }
});
rl.on('close', () => {
  vram.unmap();
  process.exit(0);
});
