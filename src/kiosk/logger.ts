// The kiosk daemon's log (issue 9): structured JSON lines from pino on stderr (the journal keeps
// them), or `pretty` one readable line per event for people (`text` is the same). The daemon
// keeps calling its LogFn (daemon.ts); this backs it with pino. Lines are written synchronously:
// nothing is lost when the daemon exits right after logging.
import { pino, stdTimeFunctions, type Logger } from 'pino';
import type { LogFn } from './daemon.js';

export const LOG_FORMATS = ['json', 'pretty', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export function parseLogFormat(s: string): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(s)) return s as LogFormat;
  throw new Error(`--log-format ${JSON.stringify(s)}: expected json (JSON lines, for the journal) or pretty (readable; text is the same)`);
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** One JSON log line -> "HH:MM:SS.mmm LEVEL msg key=value ..." (only the event and what locates it). */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const t = typeof o['time'] === 'string' ? (o['time'] as string).slice(11, 23) : '';
  const level = String(o['level'] ?? 'info').toUpperCase().padEnd(5);
  const extras = ['event', 'output', 'vm', 'line', 'column', 'uid', 'pid']
    .filter((k) => o[k] !== undefined && (k !== 'pid' || o['event'] === 'control-refused'))
    .map((k) => `${k}=${fieldText(o[k])}`);
  return `${t ? t + ' ' : ''}${level} ${String(o['msg'] ?? '')}${extras.length ? `  (${extras.join(' ')})` : ''}\n`;
}

export interface KioskLogger {
  log: LogFn;
  pino: Logger;
  setLevel(level: LogLevel): void;
}

/** A LogFn writing JSON lines (or pretty lines) through pino to `write` (stderr by default). */
export function createLogger(format: LogFormat, level: LogLevel, write: (s: string) => void = (s) => void process.stderr.write(s)): KioskLogger {
  const stream = format === 'json' ? { write } : { write: (s: string) => write(prettyLine(s)) };
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // bigints (KMS ids, modifiers) as strings; pino's serializer would refuse them
      hooks: {
        logMethod(args, method) {
          const [fields, ...rest] = args as unknown[];
          if (fields && typeof fields === 'object') {
            const clean = JSON.parse(JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as object;
            return method.apply(this, [clean, ...rest] as Parameters<typeof method>);
          }
          return method.apply(this, args);
        },
      },
    },
    stream,
  );
  const log: LogFn = (lvl, msg, fields) => {
    logger[lvl](fields ?? {}, msg);
  };
  return { log, pino: logger, setLevel: (l) => void (logger.level = l) };
}
