/**
 * An engine process's metrics collection that fails (no engine process, no model: fakes): the engine logs
 * it and answers `metrics_failed` instead of leaving a rejection unhandled (which ends the process), and
 * the front counts it in qwen_metrics_collect_errors_total and keeps the engine's last snapshot.
 */
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Engine, EngineCollection } from '../src/engine/engine.js';
import type { EngineMessage } from '../src/engine/ipc.js';
import { MetricsCollector } from '../src/engine/metrics-collector.js';
import { relayCollection } from '../src/engine/metrics-relay.js';
import { MainMetrics } from '../src/metrics/main-metrics.js';
import { parseExposition, value } from './helpers/prom.js';

function memoryLogger() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('engine process: collecting its metrics', () => {
  it('a collection that fails is logged and answered with metrics_failed, with no unhandled rejection', async () => {
    const { log, lines } = memoryLogger();
    const sent: EngineMessage[] = [];
    const engine = { collect: () => Promise.reject(new Error('a registry could not be read')) };
    await relayCollection(engine, { id: 7, timeoutMs: 100 }, (m) => sent.push(m), log);
    await flush();
    expect(sent).toEqual([{ type: 'metrics_failed', id: 7 }]);
    expect(lines.some((l) => l.level === 50 && l.msg.includes('collecting the engine metrics failed'))).toBe(true);
  });

  it('a collection that succeeds is merged and sent once', async () => {
    const { log } = memoryLogger();
    const sent: EngineMessage[] = [];
    const c: EngineCollection = { parts: [], late: false, workers: [] };
    await relayCollection({ collect: () => Promise.resolve(c) }, { id: 8, timeoutMs: 100 }, (m) => sent.push(m), log);
    expect(sent).toEqual([{ type: 'metrics', id: 8, metrics: [], late: false, workers: [] }]);
  });

  it('a send that throws (the channel closed) is logged, not thrown', async () => {
    const { log, lines } = memoryLogger();
    const c: EngineCollection = { parts: [], late: false, workers: [] };
    const send = () => {
      throw new Error('channel closed');
    };
    await expect(relayCollection({ collect: () => Promise.resolve(c) }, { id: 9, timeoutMs: 100 }, send, log)).resolves.toBeUndefined();
    expect(lines.some((l) => l.msg.includes('sending the engine metrics to the front failed'))).toBe(true);
  });

  it('the front counts a failed collection in qwen_metrics_collect_errors_total', async () => {
    const main = new MainMetrics({
      version: 'test',
      timeBuckets: [1],
      models: [],
      routes: [],
    });
    let failed = false;
    const engine = Object.assign(new EventEmitter(), {
      index: 0,
      workers: 1,
      labels: { engine: '0', device: 'cpu' },
      collect: (): Promise<EngineCollection> => Promise.resolve({ parts: [], late: false, workers: [], failed }),
    }) as unknown as Engine;
    const collector = new MetricsCollector(() => [{ model: 'm', engines: [engine] }], main, { timeoutMs: 100 });
    const count = async () =>
      value(
        parseExposition(await (await collector.collect('text/plain; version=0.0.4; charset=utf-8')).registry.metrics()),
        'qwen_metrics_collect_errors_total',
      );
    expect(await count()).toBe(0);
    failed = true;
    expect(await count()).toBe(1);
    expect(await count()).toBe(2);
  });
});
