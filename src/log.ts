// pino logger factory. JSON to stderr by default (stdout of the foreground daemon stays free
// for the readiness line); `pretty` for people at a terminal.
import { type Logger as PinoLogger, pino } from 'pino';

export type Logger = PinoLogger;
export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, format: LogFormat, destination: number | string = 2): Logger {
  if (format === 'pretty') {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination, colorize: false, translateTime: 'SYS:standard' } },
    });
  }
  return pino({ level, base: { name: 'bucketfs' } }, pino.destination({ dest: destination, sync: false, mkdir: true }));
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
