/** The process logger: pino, JSON lines on stdout (one line per event, easy to ship and to grep). */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'qwen-serve' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Nothing logs headers or keys today; this keeps it so if someone logs a request or the config.
    redact: {
      paths: ['authorization', '*.authorization', 'headers.authorization', '*.headers.authorization', 'apiKeys', '*.apiKeys'],
      censor: '[redacted]',
    },
  });
}
