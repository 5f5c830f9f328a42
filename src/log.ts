/** The process logger: pino, JSON lines on stdout (one line per event, easy to ship and to grep). */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'qwen-serve' }, timestamp: pino.stdTimeFunctions.isoTime });
}
