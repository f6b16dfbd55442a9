import { pino, type Logger } from 'pino';

// One structured logger for the whole process; components take child loggers with their own bindings.
const level = process.env.SEINE_LOG_LEVEL ?? (process.env.JEST_WORKER_ID ? 'silent' : 'info');

export const rootLogger: Logger = pino({ level, base: { pid: process.pid } });

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}

export type { Logger };
