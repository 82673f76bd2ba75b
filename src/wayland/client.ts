// A small Wayland client: object table and id allocation, request marshalling, event dispatch,
// wl_display (error, delete_id), wl_display.sync roundtrips and the registry's globals.
// Interfaces come from ./protocol.ts (generated from the XML); the bytes from ./wire.ts.
import { closeSync } from 'node:fs';
import { CompositorProtocolError, ConnectionClosedError, WaylandError } from './errors.js';
import { INTERFACES, wl_callback, wl_display, wl_registry } from './protocol.js';
import { NetTransport, resolveSocketPath, type WaylandTransport } from './transport.js';
import { UnixTransport } from './unix-transport.js';
import { decodeArgs, encodeMessage, WireDecoder, WireError, type ArgValue, type EncodedMessage, type InterfaceSpec, type MessageSpec, type RawMessage } from './wire.js';

export type RequestName<I extends InterfaceSpec> = I['requests'][number]['name'];
export type EventName<I extends InterfaceSpec> = I['events'][number]['name'];
export type EventHandlers<I extends InterfaceSpec> = Partial<Record<EventName<I>, (args: ArgValue[]) => void>>;

/** the first id a server allocates (WL_SERVER_ID_START); client ids are below */
export const SERVER_ID_START = 0xff000000;
export const DISPLAY_ID = 1;

/** one protocol object of this connection */
export class WlProxy<I extends InterfaceSpec = InterfaceSpec> {
  handlers: EventHandlers<I> = {};
  /** destroyed on our side: its events are parsed (descriptors closed) and dropped */
  zombie = false;
  constructor(
    readonly client: WaylandClient,
    readonly id: number,
    readonly iface: I,
    readonly version: number,
  ) {}

  request(name: RequestName<I>, ...values: ArgValue[]): void {
    this.client.sendRequest(this, name, values);
  }

  toString(): string {
    return `${this.iface.name}@${this.id}`;
  }
}

export interface Global {
  readonly name: number;
  readonly interface: string;
  readonly version: number;
}

/** wl_registry: the globals as advertised and withdrawn */
export class Registry {
  readonly globals = new Map<number, Global>();
  private listeners: { add: (g: Global) => void; remove: (g: Global) => void }[] = [];

  constructor(readonly proxy: WlProxy<typeof wl_registry>) {
    proxy.handlers = {
      global: ([name, iface, version]) => {
        const g = { name: name as number, interface: iface as string, version: version as number };
        this.globals.set(g.name, g);
        for (const l of this.listeners) l.add(g);
      },
      global_remove: ([name]) => {
        const g = this.globals.get(name as number);
        this.globals.delete(name as number);
        if (g) for (const l of this.listeners) l.remove(g);
      },
    };
  }

  /** globals of one interface, in advertisement order */
  find(interfaceName: string): Global[] {
    return [...this.globals.values()].filter((g) => g.interface === interfaceName);
  }

  /** be told of globals added and removed from now on */
  watch(add: (g: Global) => void, remove: (g: Global) => void): () => void {
    const l = { add, remove };
    this.listeners.push(l);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== l);
    };
  }

  /** wl_registry.bind at min(version, the global's version); throws on a withdrawn global */
  bind<I extends InterfaceSpec>(global: Global, iface: I, version: number = iface.version): WlProxy<I> {
    if (!this.globals.has(global.name)) throw new WaylandError('global-gone', `the compositor withdrew ${global.interface} (global ${global.name})`);
    if (global.interface !== iface.name) throw new WaylandError('bad-bind', `global ${global.name} is ${global.interface}, not ${iface.name}`);
    const v = Math.min(version, global.version, iface.version);
    const proxy = this.proxy.client.newProxy(iface, v);
    this.proxy.request('bind', global.name, { interface: iface.name, version: v, id: proxy.id });
    return proxy;
  }
}

export class WaylandClient {
  readonly display: WlProxy<typeof wl_display>;
  private readonly objects = new Map<number, WlProxy>();
  private readonly freeIds: number[] = [];
  private nextId = 2;
  private readonly decoder = new WireDecoder();
  private readonly outQueue: EncodedMessage[] = [];
  private registryObj: Registry | undefined;
  private failure: Error | undefined;
  private failListeners: ((e: Error) => void)[] = [];

  constructor(readonly transport: WaylandTransport) {
    this.display = new WlProxy(this, DISPLAY_ID, wl_display, 1);
    this.objects.set(DISPLAY_ID, this.display);
    this.display.handlers = {
      error: ([objectId, code, message]) => {
        const obj = objectId === null ? undefined : this.objects.get(objectId as number);
        const iface = obj?.iface;
        const entry = iface?.enums.find((e) => e.name === 'error')?.entries.find((x) => x.value === code);
        this.fail(new CompositorProtocolError(iface?.name ?? 'unknown', (objectId as number | null) ?? 0, code as number, entry?.name, message as string));
      },
      delete_id: ([id]) => this.releaseId(id as number),
    };
    transport.onData((bytes, fds) => this.receive(bytes, fds));
    transport.onClose((e) => this.fail(new ConnectionClosedError(e ? e.message : 'the compositor closed it', { cause: e })));
  }

  /**
   * Connect to the compositor of this session ($WAYLAND_DISPLAY, $XDG_RUNTIME_DIR): over the
   * addon's UNIX socket with descriptor passing (default), or node:net without ('net': enough to
   * list globals and offers, but every fd argument arrives as -1).
   */
  static async connect(env: NodeJS.ProcessEnv = process.env, opts: { transport?: 'unix' | 'net' } = {}): Promise<WaylandClient> {
    const socketPath = resolveSocketPath(env);
    if (opts.transport === 'net') return new WaylandClient(await NetTransport.connect(socketPath));
    return new WaylandClient(UnixTransport.connect(socketPath));
  }

  /** the error that ended the connection, if any */
  get error(): Error | undefined {
    return this.failure;
  }

  /** be told once when the connection ends (protocol error, close, malformed input) */
  onFail(handler: (e: Error) => void): () => void {
    if (this.failure) handler(this.failure);
    else this.failListeners.push(handler);
    return () => {
      this.failListeners = this.failListeners.filter((h) => h !== handler);
    };
  }

  /** a new client-side object (its id is sent by the request that creates it) */
  newProxy<I extends InterfaceSpec>(iface: I, version: number): WlProxy<I> {
    const id = this.freeIds.shift() ?? this.nextId++;
    if (id >= SERVER_ID_START) throw new WaylandError('ids-exhausted', 'out of client object ids');
    const p = new WlProxy(this, id, iface, version);
    this.objects.set(id, p as unknown as WlProxy);
    return p;
  }

  /** an object the compositor created (a new_id in an event) */
  private adoptServerObject(id: number, ifaceName: string | undefined, version: number, where: string): void {
    const iface = ifaceName === undefined ? undefined : INTERFACES[ifaceName];
    if (!iface) throw new WaylandError('unknown-interface', `${where} creates an object of interface ${ifaceName ?? '(untyped)'}, which this client does not know`);
    this.objects.set(id, new WlProxy(this, id, iface, version));
  }

  object(id: number): WlProxy | undefined {
    return this.objects.get(id);
  }

  sendRequest(proxy: WlProxy, name: string, values: ArgValue[]): void {
    if (this.failure) throw this.failure;
    if (proxy.zombie) throw new WaylandError('destroyed', `${proxy} is destroyed: ${name} cannot be sent`);
    const spec = proxy.iface.requests.find((r) => r.name === name);
    if (!spec) throw new WaylandError('no-request', `${proxy.iface.name} has no request ${name}`);
    if (spec.since > proxy.version) throw new WaylandError('version', `${proxy.iface.name}.${name} needs version ${spec.since}; ${proxy} is version ${proxy.version}`);
    const m = encodeMessage(proxy.id, spec, values);
    this.outQueue.push(m);
    if (this.outQueue.length === 1) queueMicrotask(() => this.flush());
    if (spec.destructor) this.destroyLocal(proxy);
  }

  /**
   * Write the queued requests as one chunk. Requests of one synchronous run go out together
   * (as libwayland buffers until wl_display_flush): a compositor that answers the first with a
   * protocol error and closes cannot make the write of the next fail before its error is read.
   */
  flush(): void {
    const q = this.outQueue.splice(0);
    if (q.length === 0 || this.failure) return;
    const size = q.reduce((n, m) => n + m.bytes.length, 0);
    const bytes = new Uint8Array(size);
    let off = 0;
    for (const m of q) {
      bytes.set(m.bytes, off);
      off += m.bytes.length;
    }
    this.transport.send(bytes, q.flatMap((m) => m.fds));
  }

  /** our side forgets the object; a client id is reused only after the server's delete_id */
  destroyLocal(proxy: WlProxy): void {
    proxy.zombie = true;
    proxy.handlers = {};
    if (proxy.id >= SERVER_ID_START) this.objects.delete(proxy.id);
  }

  private releaseId(id: number): void {
    const p = this.objects.get(id);
    if (!p) return;
    this.objects.delete(id);
    if (id < SERVER_ID_START) this.freeIds.push(id);
  }

  /** wl_display.sync: resolves when the compositor has handled every request sent before it */
  sync(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.failure) {
        reject(this.failure);
        return;
      }
      const cb = this.newProxy(wl_callback, 1);
      const off = this.onFail(reject);
      cb.handlers = {
        done: ([data]) => {
          off();
          resolve(data as number);
        },
      };
      this.display.request('sync', cb.id);
    });
  }

  /** the registry (created on first use; its globals arrive before the next sync completes) */
  registry(): Registry {
    if (!this.registryObj) {
      const p = this.newProxy(wl_registry, 1);
      this.registryObj = new Registry(p);
      this.display.request('get_registry', p.id);
    }
    return this.registryObj;
  }

  /** get the registry and wait until its initial globals are in */
  async globals(): Promise<Registry> {
    const r = this.registry();
    await this.sync();
    return r;
  }

  close(): void {
    this.flush();
    if (!this.failure) this.fail(new ConnectionClosedError('closed by vgpu-flip'));
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    const ls = this.failListeners;
    this.failListeners = [];
    for (const l of ls) l(e);
    this.transport.close();
    for (const fd of this.decoder.fds.splice(0)) safeClose(fd);
  }

  /** bytes (and descriptors) from the transport: frame, parse, dispatch */
  receive(bytes: Uint8Array, fds: number[]): void {
    if (this.failure) {
      for (const fd of fds) safeClose(fd);
      return;
    }
    try {
      this.decoder.push(bytes, fds);
      for (const msg of this.decoder.drain()) {
        this.dispatch(msg);
        if (this.failure) return;
      }
    } catch (e) {
      this.fail(e instanceof WireError || e instanceof WaylandError ? e : new WaylandError('dispatch', `handling an event failed: ${(e as Error).message}`, { cause: e }));
    }
  }

  private dispatch(msg: RawMessage): void {
    const proxy = this.objects.get(msg.objectId);
    if (!proxy) throw new WireError('bad-value', 'event for an object this client never had', { objectId: msg.objectId, opcode: msg.opcode });
    const spec: MessageSpec | undefined = proxy.iface.events[msg.opcode];
    if (!spec) throw new WireError('bad-value', `${proxy.iface.name} has no event ${msg.opcode}`, { objectId: msg.objectId, opcode: msg.opcode });
    const args = decodeArgs(spec, msg, this.decoder.fds, !this.transport.passesFds);
    const where = `${proxy.iface.name}.${spec.name}`;
    spec.args.forEach((a, i) => {
      if (a.type === 'new_id') this.adoptServerObject(args[i] as number, a.interface, proxy.version, where);
    });
    if (proxy.zombie) {
      // a destroyed object's event: nobody takes its descriptors
      spec.args.forEach((a, i) => {
        if (a.type === 'fd') safeClose(args[i] as number);
      });
      return;
    }
    const handler = (proxy.handlers as Record<string, ((a: ArgValue[]) => void) | undefined>)[spec.name];
    handler?.(args);
    if (spec.destructor) {
      proxy.zombie = true;
      if (proxy.id >= SERVER_ID_START) this.objects.delete(proxy.id);
    }
  }
}

const safeClose = (fd: number): void => {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
};

