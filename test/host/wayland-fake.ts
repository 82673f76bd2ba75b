// A fake compositor's end for host tests of the Wayland client: a transport that records what
// the client writes and delivers hand-assembled event bytes (with real descriptors), and the
// drm-lease-v1 bytes of one lease device offering one connector (wayland-lease.test.ts explains
// each message: opcodes in XML declaration order, server objects from 0xff000000).
import type { WaylandTransport } from '../../src/wayland/transport.js';
import { hex } from '../../src/wayland/wire.js';

export const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

export class FdTransport implements WaylandTransport {
  readonly passesFds = true;
  sent: { hex: string; fds: readonly number[] }[] = [];
  private data: ((b: Uint8Array, fds: number[]) => void) | undefined;
  private closeHandler: ((e?: Error) => void) | undefined;
  closed = false;
  send(b: Uint8Array, fds: readonly number[]): void {
    this.sent.push({ hex: hex(b), fds });
  }
  onData(h: (b: Uint8Array, fds: number[]) => void): void {
    this.data = h;
  }
  onClose(h: (e?: Error) => void): void {
    this.closeHandler = h;
  }
  close(): void {
    this.closed = true;
  }
  deliver(s: string, fds: number[] = []): void {
    this.data?.(bytes(s), fds);
  }
  /** the compositor goes away */
  hangUp(): void {
    this.closeHandler?.();
  }
  /** the requests written since the last call */
  take(): string[] {
    return this.sent.splice(0).map((s) => s.hex);
  }
}

// compositor -> client, objects: registry 2, callback 3 (its id is reused after delete_id, as
// libwayland does: the device gets 3, the next callback 4), connector 0xff000000
export const GLOBAL_DEVICE = '02000000 00002c00 09000000 17000000 77705f64 726d5f6c 65617365 5f646576 6963655f 76310000 01000000'; // global(9, "wp_drm_lease_device_v1", 1)
export const DONE_3 = '03000000 00000c00 10000000 01000000 01000c00 03000000'; // wl_callback@3.done(16); delete_id(3)
export const DONE_4 = '04000000 00000c00 11000000 01000000 01000c00 04000000'; // wl_callback@4.done(17); delete_id(4)
export const DEVICE_OFFER = [
  '03000000 00000800', // device.drm_fd (fd out of band)
  '03000000 01000c00 000000ff', // device.connector(new_id 0xff000000)
  '000000ff 00001400 05000000 44502d32 00000000', // connector.name("DP-2")
  '000000ff 01001800 0c000000 56616c76 6520496e 64657800', // connector.description("Valve Index")
  '000000ff 02000c00 4d000000', // connector.connector_id(77)
  '000000ff 03000800', // connector.done
  '03000000 02000800', // device.done
].join(' ');
