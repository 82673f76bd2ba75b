// EDID identity: who a monitor is, from the 128-byte base block of its EDID (VESA E-EDID 1.3 /
// 1.4 layout), for matching kiosk outputs like kanshi ("MAKE MODEL SERIAL"). The KMS EDID
// property (ConnectorSnapshot.properties.EDID) is a blob id; its contents go in here. Only the
// base block is read; extension blocks may follow and are ignored. Pure, no I/O.
//
//   0..7    header 00 ff ff ff ff ff ff 00
//   8..9    manufacturer PNP id, big endian: 0 | 5 bits letter | 5 bits | 5 bits ('A' = 1)
//   10..11  product code, little endian
//   12..15  serial number, little endian (0 = unused)
//   16, 17  week (0xff: year is the model year), year - 1990
//   18, 19  EDID version, revision
//   21, 22  maximum image size in cm (horizontal, vertical)
//   54..125 four 18-byte descriptors; a display descriptor starts 00 00 00 TAG 00, then 13
//           bytes of data: 0xfc monitor name, 0xff serial string, 0xfe text, terminated by 0x0a
//   126     number of extension blocks
//   127     checksum: the 128 bytes add up to 0 mod 256

export interface EdidIdentity {
  /** PNP manufacturer id, e.g. "DEL", "HVR" */
  manufacturer: string;
  /** product code (16 bits) */
  productCode: number;
  /** serial number (32 bits; 0 when unused) */
  serialNumber: number;
  /** monitor name descriptor (0xfc), null when absent */
  name: string | null;
  /** serial string descriptor (0xff), null when absent */
  serial: string | null;
  version: string;
  /** year of manufacture (or model year when `modelYear`) */
  year: number;
  week: number | null;
  modelYear: boolean;
  /** image size in cm, 0 when unknown (a projector, a headset) */
  widthCm: number;
  heightCm: number;
  extensions: number;
  /** the kernel's EDID_QUIRK_NON_DESKTOP list: a VR headset, not a desktop monitor */
  nonDesktop: boolean;
  /** "MAKE MODEL SERIAL": what `match:` compares against */
  description: string;
}

export class EdidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EdidError';
  }
}

const HEADER = [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];

/**
 * Headsets with EDID_QUIRK_NON_DESKTOP in drivers/gpu/drm/drm_edid.c (a subset; the kernel
 * also honours the Microsoft HMD extension, and the connector's "non-desktop" property is the
 * authority when the daemon can read it).
 */
const NON_DESKTOP: ReadonlySet<string> = new Set([
  'HVR:aa01', 'HVR:aa02', 'HVR:aa04', // HTC Vive, Vive Pro, Vive Pro 2
  'OVR:0001', 'OVR:0003', 'OVR:0004', 'OVR:0012', // Oculus Rift DK1, DK2, CV1, Rift S
  'ACR:7fce', 'LEN:0408', 'FUJ:1970', 'DEL:7fce', 'SEC:144a', 'AUS:c102', // Windows Mixed Reality
  'SNY:0704', // Sony PlayStation VR
  'SEN:1019', 'SVR:1019', 'AUO:1111', // Sensics, OSVR
]);

const hex4 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;

export function isNonDesktop(manufacturer: string, productCode: number): boolean {
  return NON_DESKTOP.has(`${manufacturer}:${productCode.toString(16).padStart(4, '0')}`);
}

function pnpId(hi: number, lo: number): string {
  const v = (hi << 8) | lo;
  if (v & 0x8000) throw new EdidError(`manufacturer id 0x${v.toString(16)} has its reserved top bit set: not an EDID, or a corrupted one`);
  const letters = [(v >> 10) & 0x1f, (v >> 5) & 0x1f, v & 0x1f];
  if (letters.some((l) => l < 1 || l > 26)) {
    throw new EdidError(`manufacturer id 0x${v.toString(16).padStart(4, '0')} is not three letters A-Z (5-bit codes ${letters.join(', ')})`);
  }
  return String.fromCharCode(...letters.map((l) => 64 + l));
}

/** the 13 data bytes of a string descriptor: up to 0x0a, trailing spaces dropped, non-ASCII as '?' */
function descriptorString(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) {
    if (b === 0x0a || b === 0x00) break;
    s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?';
  }
  return s.trim();
}

/** "MAKE MODEL SERIAL" with the fallbacks wlroots (kanshi) uses: "0x%04X" product code, "0x%08X" serial number */
export function edidDescription(id: Pick<EdidIdentity, 'manufacturer' | 'productCode' | 'serialNumber' | 'name' | 'serial'>): string {
  const model = id.name && id.name.length > 0 ? id.name : hex4(id.productCode);
  const serial = id.serial && id.serial.length > 0 ? id.serial : id.serialNumber !== 0 ? `0x${id.serialNumber.toString(16).toUpperCase().padStart(8, '0')}` : 'Unknown';
  return `${id.manufacturer} ${model} ${serial}`.replace(/ +/g, ' ');
}

/** Parse the base block of an EDID (extension blocks after it are allowed and ignored). */
export function parseEdid(data: Uint8Array): EdidIdentity {
  if (data.length < 128) {
    throw new EdidError(`EDID too short: ${data.length} bytes, the base block alone is 128 (a truncated read of the EDID blob?)`);
  }
  const b = data.subarray(0, 128);
  const badHeader = HEADER.findIndex((v, i) => b[i] !== v);
  if (badHeader >= 0) {
    const got = [...b.subarray(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    throw new EdidError(`not an EDID: the header must be 00 ff ff ff ff ff ff 00, got ${got} (byte ${badHeader} differs)`);
  }
  const sum = b.reduce((a, x) => (a + x) & 0xff, 0);
  if (sum !== 0) {
    const fix = (b[127]! - sum) & 0xff;
    throw new EdidError(`EDID checksum error: the 128 bytes add up to 0x${sum.toString(16).padStart(2, '0')} mod 256, not 0 (byte 127 is 0x${b[127]!.toString(16).padStart(2, '0')}; it would need to be 0x${fix.toString(16).padStart(2, '0')}): a corrupted EDID`);
  }
  if (b[18] !== 1) throw new EdidError(`EDID version ${b[18]}.${b[19]}: only version 1 base blocks are understood`);
  const manufacturer = pnpId(b[8]!, b[9]!);
  const productCode = b[10]! | (b[11]! << 8);
  const serialNumber = (b[12]! | (b[13]! << 8) | (b[14]! << 16) | (b[15]! << 24)) >>> 0;
  let name: string | null = null;
  let serial: string | null = null;
  for (let off = 54; off < 126; off += 18) {
    const d = b.subarray(off, off + 18);
    if (d[0] !== 0 || d[1] !== 0 || d[2] !== 0) continue; // a detailed timing descriptor
    const text = descriptorString(d.subarray(5, 18));
    if (d[3] === 0xfc) name = name === null ? text : `${name}${text}`; // long names span two descriptors
    else if (d[3] === 0xff && serial === null) serial = text;
  }
  const id = {
    manufacturer,
    productCode,
    serialNumber,
    name,
    serial,
    version: `${b[18]}.${b[19]}`,
    year: 1990 + b[17]!,
    week: b[16] === 0 || b[16] === 0xff ? null : b[16]!,
    modelYear: b[16] === 0xff,
    widthCm: b[21]!,
    heightCm: b[22]!,
    extensions: b[126]!,
    nonDesktop: isNonDesktop(manufacturer, productCode),
  };
  return { ...id, description: edidDescription(id) };
}

/** Parse hex text ("00 ff ff ..."; `#` comments and whitespace ignored) into bytes. */
export function edidFromHex(text: string): Uint8Array {
  const digits = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new EdidError('EDID hex text must be pairs of hex digits (whitespace and # comments allowed)');
  return Uint8Array.from(digits.match(/../g) ?? [], (h) => parseInt(h, 16));
}
