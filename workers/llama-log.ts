/**
 * llama.cpp's log lines from a worker thread, handed to the main thread's logger (JSON lines) instead of
 * node-llama-cpp's default console printer. A grammar that fails to parse is printed whole by llama.cpp
 * (1.85 MB of raw text for one request was seen): each line is cut to MAX_CHARS, and a burst is cut to
 * MAX_PER_SECOND lines with a count of what was dropped.
 */
import { parentPort } from 'node:worker_threads';
import { LlamaLogLevel } from 'node-llama-cpp';
import type { LlamaLogMessage } from '../src/shared/protocol.js';

const MAX_CHARS = 2000;
const MAX_PER_SECOND = 20;

const LEVELS: Partial<Record<LlamaLogLevel, LlamaLogMessage['level']>> = {
  [LlamaLogLevel.fatal]: 'error',
  [LlamaLogLevel.error]: 'error',
  [LlamaLogLevel.warn]: 'warn',
  [LlamaLogLevel.info]: 'info',
  [LlamaLogLevel.log]: 'info',
  [LlamaLogLevel.debug]: 'debug',
};

export function llamaLogger(post: (msg: LlamaLogMessage) => void = (msg) => parentPort?.postMessage(msg)) {
  let windowStart = 0;
  let inWindow = 0;
  let dropped = 0;
  return (level: LlamaLogLevel, message: string): void => {
    const mapped = LEVELS[level];
    if (!mapped) return;
    const now = Date.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      inWindow = 0;
    }
    if (++inWindow > MAX_PER_SECOND) {
      dropped++;
      return;
    }
    const text = message.trimEnd();
    const msg: LlamaLogMessage = { type: 'llama_log', level: mapped, message: text.slice(0, MAX_CHARS) };
    if (text.length > MAX_CHARS) msg.truncated = text.length - MAX_CHARS;
    if (dropped > 0) msg.dropped = dropped;
    dropped = 0;
    post(msg);
  };
}
