// The kiosk's control protocol (issue 9): line-delimited JSON over the control socket. A client
// sends one request per line and reads one response line per request, in order:
//
//   -> {"id":1,"cmd":"status"}
//   <- {"id":1,"ok":true,"cmd":"status","status":{...}}              (status.ts: StatusReport)
//   -> {"id":2,"cmd":"screenshot","output":"wall","method":"auto"}   (output, method: optional)
//   <- {"id":2,"ok":true,"cmd":"screenshot","output":"wall","method":"compose","notes":[..],
//       "width":1024,"height":768,"png":"<base64>"}
//   -> {"id":3,"cmd":"reload"}
//   <- {"id":3,"ok":true,"cmd":"reload","applied":false,"message":"...","problems":[{line,column,path,message,text}]}
//   <- {"id":4,"ok":false,"error":"..."}                              (bad request, refused peer, failure)
//
// Pure: parsing and checking both directions (a reply from the socket is input too).
import { z } from 'zod';

/** longest request line the daemon reads (a request is tiny) */
export const MAX_REQUEST_BYTES = 16 * 1024;
/** longest response line a client reads (a screenshot's PNG in base64) */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_CONTROL_SOCKET = '/run/vgpu-flip/kiosk.sock';

export const COMMANDS = ['status', 'screenshot', 'reload'] as const;
export const SCREENSHOT_METHODS = ['auto', 'writeback', 'compose'] as const;
export type Command = (typeof COMMANDS)[number];

const id = z.union([z.number(), z.string().max(64)]).optional();

const RequestSchema = z.discriminatedUnion('cmd', [
  z.strictObject({ id, cmd: z.literal('status') }),
  z.strictObject({
    id,
    cmd: z.literal('screenshot'),
    output: z.string().min(1).max(63).optional(),
    // auto (default): writeback beside the display, else composed; writeback: through the writeback
    // connector even when it must be routed alone for a frame (the monitor blanks for a frame)
    method: z.enum(SCREENSHOT_METHODS, { error: `method must be ${SCREENSHOT_METHODS.join(', ')}` }).optional(),
  }),
  z.strictObject({ id, cmd: z.literal('reload') }),
]);
export type Request = z.infer<typeof RequestSchema>;

export interface ReloadProblem {
  line: number | null;
  column: number | null;
  path: string;
  message: string;
  /** file:line:column: message, as logged */
  text: string;
}

export type Response =
  | { id?: number | string; ok: true; cmd: 'status'; status: unknown }
  | { id?: number | string; ok: true; cmd: 'screenshot'; output: string; method: string; notes: string[]; width: number; height: number; png: string }
  | { id?: number | string; ok: true; cmd: 'reload'; applied: boolean; message: string; problems: ReloadProblem[] }
  | { id?: number | string; ok: false; error: string };

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

function parseJsonLine(line: string, what: string): ParseResult<unknown> {
  const t = line.trim();
  if (t === '') return { ok: false, error: `empty ${what} line` };
  try {
    return { ok: true, value: JSON.parse(t) as unknown };
  } catch (e) {
    return { ok: false, error: `${what} is not JSON (${(e as Error).message}): ${JSON.stringify(t.slice(0, 80))}` };
  }
}

/** One request line from a client: a request, or what is wrong with it (sent back as ok:false). */
export function parseRequest(line: string): ParseResult<Request> {
  const j = parseJsonLine(line, 'request');
  if (!j.ok) return j;
  const v = j.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'a request is a JSON object: {"cmd":"status"}' };
  const cmd = (v as { cmd?: unknown }).cmd;
  if (typeof cmd !== 'string' || !(COMMANDS as readonly string[]).includes(cmd)) {
    return { ok: false, error: `unknown command ${JSON.stringify(cmd ?? null)}: the daemon knows ${COMMANDS.join(', ')}` };
  }
  const r = RequestSchema.safeParse(v);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const where = i.path.length ? `"${i.path.join('.')}"` : 'request';
    const msg = i.code === 'unrecognized_keys' ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}` : i.message;
    return { ok: false, error: `bad ${cmd} request: ${where}: ${msg}` };
  }
  return { ok: true, value: r.data };
}

const ProblemSchema = z.object({ line: z.number().nullable(), column: z.number().nullable(), path: z.string(), message: z.string(), text: z.string() });
const ResponseSchema = z.union([
  z.object({ id, ok: z.literal(false), error: z.string() }),
  z.object({ id, ok: z.literal(true), cmd: z.literal('status'), status: z.unknown() }),
  z.object({
    id, ok: z.literal(true), cmd: z.literal('screenshot'), output: z.string(), method: z.string(), notes: z.array(z.string()),
    width: z.number().int().positive(), height: z.number().int().positive(), png: z.string().min(1),
  }),
  z.object({ id, ok: z.literal(true), cmd: z.literal('reload'), applied: z.boolean(), message: z.string(), problems: z.array(ProblemSchema) }),
]);

/**
 * One response line from the daemon, checked: the reply to `cmd` (or an ok:false error).
 * Anything else says what was wrong, naming the socket.
 */
export function parseResponse(line: string, cmd: Command, socket: string): ParseResult<Response> {
  const j = parseJsonLine(line, `the reply from ${socket}`);
  if (!j.ok) return { ok: false, error: `${j.error} (is this a vgpu-flip kiosk control socket?)` };
  const r = ResponseSchema.safeParse(j.value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    return { ok: false, error: `unexpected reply to ${cmd} from ${socket}: ${i.path.join('.') || 'reply'}: ${i.message} (a daemon of another version?)` };
  }
  const v = r.data as Response;
  if (v.ok && v.cmd !== cmd) return { ok: false, error: `reply to ${v.cmd} from ${socket} while ${cmd} was asked` };
  return { ok: true, value: v };
}

export function encode(msg: Request | Response): string {
  return JSON.stringify(msg, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
}

/**
 * Splits a byte stream into lines, refusing a line longer than `max` bytes (without buffering
 * it). push() returns the complete lines; an over-long line gives an error once.
 */
export class LineSplitter {
  private buf = '';
  constructor(private readonly max: number) {}
  push(chunk: string): { lines: string[]; tooLong: boolean } {
    this.buf += chunk;
    const lines: string[] = [];
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      lines.push(this.buf.slice(0, nl));
      this.buf = this.buf.slice(nl + 1);
    }
    const tooLong = this.buf.length > this.max || lines.some((l) => l.length > this.max);
    if (tooLong) this.buf = '';
    return { lines: tooLong ? lines.filter((l) => l.length <= this.max) : lines, tooLong };
  }
  /** what is left without a newline (a client that closed after its last line) */
  rest(): string {
    return this.buf;
  }
}
