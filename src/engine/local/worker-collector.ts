/**
 * Collects the registries of one pool's workers: asks every ready worker over the workers' channel
 * with a timeout (a late worker contributes its last snapshot) and keeps the last counters of every
 * worker that died as a baseline for its slot, so the merged counters never go backwards.
 */
import type { ModelPool } from './model-pool.js';
import { Baselines } from '../../metrics/baselines.js';
import { withLabels, type MetricJson } from '../../metrics/json.js';

export interface WorkerCollection {
  parts: MetricJson[][];
  late: boolean;
  workers: { slot: number; workerId: number; metrics: MetricJson[] }[];
}

export class WorkerCollector {
  private nextId = 1;
  /** Last snapshot of each live worker, by worker id. */
  private readonly last = new Map<number, MetricJson[]>();
  /** Counters of workers that died, by slot. */
  private readonly retired = new Baselines<number>();
  private readonly waiting = new Map<number, (workerId: number, metrics: MetricJson[]) => void>();

  /** @param perWorker label worker series with worker="slot" instead of merging them */
  constructor(
    private readonly pool: ModelPool,
    private readonly perWorker: boolean,
  ) {
    pool.on('metrics', (reply) => {
      const metrics = reply.metrics as MetricJson[];
      this.last.set(reply.workerId, metrics);
      this.waiting.get(reply.id)?.(reply.workerId, metrics);
    });
    pool.on('retired', (worker) => {
      this.retired.retire(worker.slot, this.last.get(worker.workerId));
      this.last.delete(worker.workerId);
    });
  }

  /** Asks every ready worker for its registry; resolves with what arrived within the timeout. */
  private gather(timeoutMs: number): Promise<Map<number, MetricJson[]>> {
    const ready = this.pool.readyList();
    const got = new Map<number, MetricJson[]>();
    if (ready.length === 0) return Promise.resolve(got);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(got);
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiting.set(id, (workerId, metrics) => {
        got.set(workerId, metrics);
        if (ready.every((w) => got.has(w.workerId))) done();
      });
      this.pool.broadcast({ type: 'collect', id });
    });
  }

  async collect(timeoutMs: number): Promise<WorkerCollection> {
    const fresh = await this.gather(timeoutMs);
    const parts: MetricJson[][] = [];
    const workers: WorkerCollection['workers'] = [];
    let late = false;
    const label = (snapshot: MetricJson[], slot: number) => (this.perWorker ? withLabels(snapshot, { worker: String(slot) }) : snapshot);
    for (const worker of this.pool.readyList()) {
      const snapshot = fresh.get(worker.workerId) ?? this.last.get(worker.workerId);
      if (!fresh.has(worker.workerId)) late = true;
      if (!snapshot) continue;
      parts.push(label(snapshot, worker.slot));
      workers.push({ ...worker, metrics: snapshot });
    }
    for (const [slot, snapshot] of this.retired.entries()) parts.push(label(snapshot, slot));
    return { parts, late, workers };
  }
}
