// A display: one DRM device (fd, DRM master), its objects with their property ids resolved
// once (snapshot + PropertyIndex), the calls made on it counted, and its outputs (one per CRTC
// in use). Layers of guests go on outputs (output.ts); guests and outputs are independent:
// a guest may be on several outputs, an output may show several guests.
import { native as realNative } from '../binding/index.js';
import type { NativeAddon } from '../binding/types.js';
import { PropertyIndex, type DrmDevice } from '../kms/index.js';
import type { KmsSnapshot } from '../kms/types.js';
import { CallCounter } from '../flip/counting.js';
import { Output, type OutputOptions } from './output.js';
import { DisplayWatch } from './display-watch.js';

export interface DisplayOptions {
  /** the native addon (tests pass a wrapped one); calls are counted either way */
  native?: NativeAddon;
  counter?: CallCounter;
}

export class Display {
  readonly counter: CallCounter;
  /** the addon, counted */
  readonly api: NativeAddon;
  readonly outputs: Output[] = [];
  /** master loss and hotplug (null until watch()) */
  watch: DisplayWatch | null = null;
  private snap: KmsSnapshot | null = null;
  private props: PropertyIndex | null = null;

  constructor(
    readonly dev: DrmDevice,
    opts: DisplayOptions = {},
  ) {
    this.counter = opts.counter ?? new CallCounter();
    this.api = this.counter.wrap(opts.native ?? realNative);
  }

  /** The device's objects as read at the first use (or the last refresh()). */
  get snapshot(): KmsSnapshot {
    if (!this.snap) this.refresh();
    return this.snap!;
  }

  get index(): PropertyIndex {
    if (!this.props) this.refresh();
    return this.props!;
  }

  /** Read the device's objects again (after a hotplug). */
  refresh(): KmsSnapshot {
    this.snap = this.dev.snapshot();
    this.props = new PropertyIndex(this.snap);
    return this.snap;
  }

  /** An output on a CRTC (one per CRTC: two outputs committing to one CRTC would only EBUSY each other). */
  output(opts: OutputOptions): Output {
    if (this.outputs.some((o) => o.opts.crtcIndex === opts.crtcIndex)) throw new Error(`CRTC ${opts.crtcIndex} of ${this.dev.path} already has an output`);
    const o = new Output(this, opts);
    this.outputs.push(o);
    o.once('stopped', () => this.outputs.splice(this.outputs.indexOf(o), 1));
    return o;
  }

  /**
   * Watch the device (display-watch.ts): losing DRM master pauses every output and taking it
   * back resumes them; with `hotplug`, kernel uevents re-plan only the outputs whose connector
   * changed.
   */
  watchDevice(o: { hotplug?: boolean } = {}): DisplayWatch {
    this.watch ??= new DisplayWatch(this);
    if (o.hotplug) this.watch.watchHotplug();
    return this.watch;
  }

  /** Stop every output (each restores what it found) and the watch. */
  async stop(): Promise<void> {
    await Promise.all([...this.outputs].map((o) => o.stop()));
    this.watch?.close();
    this.watch = null;
  }
}
