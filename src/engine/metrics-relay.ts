/**
 * An engine process's answer to the front's `collect`: its engine's collection, merged once here (the front
 * gets one registry per engine however many workers it has). A collection that fails is logged here and
 * answered with `metrics_failed`, so the front counts it and uses the engine's last snapshot at once rather
 * than waiting out its timeout; nothing is left to reject unhandled, which would end the engine process.
 */
import type { Logger } from 'pino';
import { WORKER } from '../metrics/definitions.js';
import { mergeToJson } from '../metrics/json.js';
import type { EngineCollection } from './engine.js';
import type { EngineMessage } from './ipc.js';

/** The dashboard's per-worker table needs only these two metrics of each worker. */
const DASHBOARD_WORKER_METRICS = new Set<string>([WORKER.kvUsage.name, WORKER.generationTokens.name]);

export async function relayCollection(
  engine: { collect(timeoutMs: number): Promise<EngineCollection> },
  request: { id: number; timeoutMs: number },
  send: (msg: EngineMessage) => void,
  log: Logger,
): Promise<void> {
  let reply: EngineMessage;
  try {
    const c = await engine.collect(request.timeoutMs);
    reply = {
      type: 'metrics',
      id: request.id,
      metrics: await mergeToJson(c.parts),
      late: c.late,
      workers: c.workers.map((w) => ({ ...w, metrics: w.metrics.filter((m) => DASHBOARD_WORKER_METRICS.has(m.name)) })),
    };
  } catch (err) {
    log.error({ err }, 'collecting the engine metrics failed; the front keeps their last snapshot');
    reply = { type: 'metrics_failed', id: request.id };
  }
  try {
    send(reply);
  } catch (err) {
    log.error({ err }, 'sending the engine metrics to the front failed');
  }
}
