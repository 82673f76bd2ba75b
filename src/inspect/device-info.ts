// The "device" object of drm_info's JSON (libdrm's drmGetDevice), read from sysfs:
// available_nodes, bus_type (DRM_BUS_PCI 0, USB 1, PLATFORM 2, HOST1X 3), device_data, bus_data.
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { JsonLike } from '../util/json.js';

const DRM_NODE_PRIMARY = 0;
const DRM_NODE_RENDER = 2;

function readHex(file: string): number | null {
  try {
    const v = Number.parseInt(readFileSync(file, 'utf8').trim(), 16);
    return Number.isNaN(v) ? null : v;
  } catch {
    return null;
  }
}

/** null when the node has no sysfs device (or cannot be read). */
export function drmDeviceSysfsInfo(devPath: string, sysRoot = '/sys'): JsonLike {
  const name = path.basename(devPath);
  const devDir = path.join(sysRoot, 'class', 'drm', name, 'device');
  if (!existsSync(devDir)) return null;
  let nodes = 0;
  try {
    for (const n of readdirSync(path.join(devDir, 'drm'))) {
      if (/^card\d+$/.test(n)) nodes |= 1 << DRM_NODE_PRIMARY;
      if (/^renderD\d+$/.test(n)) nodes |= 1 << DRM_NODE_RENDER;
    }
  } catch {
    /* no drm folder */
  }
  let subsystem = '';
  try {
    subsystem = path.basename(readlinkSync(path.join(devDir, 'subsystem')));
  } catch {
    return null;
  }
  const real = (() => {
    try {
      return path.basename(realpathSync(devDir));
    } catch {
      return '';
    }
  })();
  switch (subsystem) {
    case 'pci': {
      const m = real.match(/^([0-9a-f]{4,}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i);
      return {
        available_nodes: nodes,
        bus_type: 0,
        device_data: {
          vendor: readHex(path.join(devDir, 'vendor')),
          device: readHex(path.join(devDir, 'device')),
          subsystem_vendor: readHex(path.join(devDir, 'subsystem_vendor')),
          subsystem_device: readHex(path.join(devDir, 'subsystem_device')),
        },
        bus_data: m
          ? { domain: Number.parseInt(m[1]!, 16), bus: Number.parseInt(m[2]!, 16), slot: Number.parseInt(m[3]!, 16), function: Number(m[4]) }
          : {},
      };
    }
    case 'usb':
      return {
        available_nodes: nodes,
        bus_type: 1,
        device_data: { vendor: readHex(path.join(devDir, 'idVendor')), product: readHex(path.join(devDir, 'idProduct')) },
        bus_data: {},
      };
    case 'platform': {
      let compatible: string[] = [];
      try {
        compatible = readFileSync(path.join(devDir, 'of_node', 'compatible'), 'latin1').split('\0').filter(Boolean);
      } catch {
        // not a device-tree device (e.g. vkms): libdrm (and so drm_info) then names it by its
        // modalias without the "platform:" prefix
        try {
          const alias = readFileSync(path.join(devDir, 'modalias'), 'latin1').trim();
          if (alias.startsWith('platform:')) compatible = [alias.slice('platform:'.length)];
        } catch {
          /* no modalias either */
        }
      }
      return { available_nodes: nodes, bus_type: 2, device_data: { compatible }, bus_data: { fullname: real } };
    }
    default:
      return { available_nodes: nodes, bus_type: null, device_data: {}, bus_data: {}, subsystem };
  }
}
