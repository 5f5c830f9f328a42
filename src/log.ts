/** The process logger: pino, JSON lines on stdout (one line per event, easy to ship and to grep). */
import { pino, type Logger } from 'pino';
import type { LlamaLogMessage } from './shared/protocol.js';

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

/** A llama.cpp log line forwarded by a worker thread (workers/llama-log.ts), already cut to size. */
export function logLlama(log: Logger, msg: LlamaLogMessage, source: 'model' | 'tokenizer'): void {
  log[msg.level]({ source, truncated: msg.truncated, dropped: msg.dropped, llama: msg.message }, 'llama.cpp');
}

/**
 * For events hostile traffic can repeat at will: `emit` runs at most once per `intervalMs`, and is told how
 * many events were dropped since it last ran, so a flood costs one log line a minute, not one per request.
 */
export function rateLimited(intervalMs: number, now: () => number = Date.now): (emit: (suppressed: number) => void) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (emit) => {
    const t = now();
    if (t - last < intervalMs) {
      suppressed++;
      return;
    }
    last = t;
    emit(suppressed);
    suppressed = 0;
  };
}
