// A client of the kiosk's control socket: one request, one checked response (control-protocol.ts).
// Connection errors are explained: which socket, the errno name, and what the user can do.
import net from 'node:net';
import { encode, LineSplitter, MAX_RESPONSE_BYTES, parseResponse, type Request, type Response } from './control-protocol.js';

export class ControlError extends Error {
  constructor(
    message: string,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

/** Why a connect() to the control socket failed, for people. */
export function explainConnectError(socket: string, e: NodeJS.ErrnoException): string {
  const code = e.code ?? 'error';
  switch (code) {
    case 'ENOENT':
      return `cannot connect to ${socket}: ENOENT (no such socket): is the kiosk daemon running (systemctl status vgpu-flip-kiosk)? Its control.socket may be elsewhere: pass --socket PATH`;
    case 'ECONNREFUSED':
      return `cannot connect to ${socket}: ECONNREFUSED (nobody listens): the daemon that created it is gone; restart it (systemctl restart vgpu-flip-kiosk)`;
    case 'EACCES':
    case 'EPERM':
      return `cannot connect to ${socket}: ${code} (permission denied): the control socket is for root and the members of the kiosk's control.group`;
    case 'ENOTSOCK':
      return `cannot connect to ${socket}: ENOTSOCK: that path is not a socket`;
    default:
      return `cannot connect to ${socket}: ${code} (${e.message})`;
  }
}

/** Send one request, wait for its response (checked), close. Throws ControlError. */
export function request(socket: string, req: Request, timeoutMs = 30_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    const split = new LineSplitter(MAX_RESPONSE_BYTES);
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      f();
    };
    const timer = setTimeout(
      () => finish(() => reject(new ControlError(`no reply to ${req.cmd} from ${socket} within ${Math.round(timeoutMs / 1000)} s (the daemon is busy or hung; see its log: journalctl -u vgpu-flip-kiosk)`, 'ETIMEDOUT'))),
      timeoutMs,
    );
    c.setEncoding('utf8');
    c.once('connect', () => c.write(encode(req)));
    c.on('error', (e: NodeJS.ErrnoException) => {
      const msg = e.code === 'ECONNRESET' || e.code === 'EPIPE' ? `${socket} closed the connection (${e.code}) before answering ${req.cmd}` : explainConnectError(socket, e);
      finish(() => reject(new ControlError(msg, e.code ?? null)));
    });
    const take = (line: string): void => {
      const r = parseResponse(line, req.cmd, socket);
      finish(() => (r.ok ? resolve(r.value) : reject(new ControlError(r.error, 'EPROTO'))));
    };
    c.on('data', (chunk: string) => {
      const { lines, tooLong } = split.push(chunk);
      if (tooLong) return finish(() => reject(new ControlError(`the reply from ${socket} is longer than ${MAX_RESPONSE_BYTES} bytes`, 'EPROTO')));
      const first = lines.find((l) => l.trim() !== '');
      if (first !== undefined) take(first);
    });
    c.on('end', () => {
      const rest = split.rest();
      if (rest.trim() !== '') take(rest);
      else finish(() => reject(new ControlError(`${socket} closed the connection without answering ${req.cmd}`, 'EPROTO')));
    });
  });
}
