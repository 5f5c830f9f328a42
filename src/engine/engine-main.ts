/**
 * Entry of an engine process (started by process-engine.ts with CUDA_VISIBLE_DEVICES set to its GPU):
 * hosts one InProcessEngine — the same pool of model workers as the single-process mode — and relays
 * tasks, worker messages, cancels and metrics over the IPC channel. It exits when told to (idle), or
 * when the front is gone.
 */
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import type { TaskChannel } from './engine.js';
import { finalOrGrace } from './final-message.js';
import { InProcessEngine } from './in-process-engine.js';
import type { EngineInit, EngineMessage, FrontMessage } from './ipc.js';
import { relayCollection } from './metrics-relay.js';

const send = (msg: EngineMessage) => {
  // The channel closes when the front exits; then there is no one left to tell.
  if (process.connected) process.send!(msg);
};

let engine: InProcessEngine | undefined;
let log: Logger | undefined;
const tasks = new Map<number, TaskChannel>();

function start(init: EngineInit): void {
  log = createLogger(init.logLevel).child({ engine: init.index, device: init.device });
  engine = new InProcessEngine(
    { pool: init.pool, metricsPerWorker: init.metricsPerWorker, processMetrics: true, index: init.index, device: init.device },
    log,
  );
  engine.on('ready', ({ llamaCpp }) => send({ type: 'workers', ready: engine!.readyWorkers, llamaCpp }));
  engine.on('change', () => send({ type: 'workers', ready: engine!.readyWorkers }));
  engine.on('loadFailed', (message) => send({ type: 'load_failed', message }));
}

function run(jobId: number, channel: TaskChannel): void {
  tasks.set(jobId, channel);
  let relayedFinal!: () => void;
  const final = new Promise<void>((resolve) => (relayedFinal = resolve));
  channel.onMessage((msg) => {
    send({ type: 'job', jobId, msg });
    if (msg.type === 'done' || msg.type === 'error') relayedFinal();
  });
  const settled = (error?: string) => {
    tasks.delete(jobId);
    send({ type: 'settled', jobId, error });
  };
  // The task promise can settle before its port's final message: relay that first (see final-message.ts).
  channel.settled.then(
    async () => {
      await finalOrGrace(final);
      settled();
    },
    (err: unknown) => settled(err instanceof Error ? err.message : String(err)),
  );
}

process.on('message', (msg: FrontMessage) => {
  switch (msg.type) {
    case 'init':
      start(msg);
      break;
    case 'run':
      run(msg.jobId, engine!.run(msg.task));
      break;
    case 'cancel':
      tasks.get(msg.jobId)?.send({ type: 'cancel', reason: msg.reason });
      break;
    case 'collect':
      // relayCollection answers a failed collection itself; this catches a failure to send that answer.
      relayCollection(engine!, msg, send, log!).catch((err: unknown) => log!.error({ err }, 'metrics relay failed'));
      break;
    case 'close':
      if (engine)
        engine.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log!.error({ err }, 'engine close failed');
            process.exit(1);
          },
        );
      else process.exit(0);
      break;
  }
});

// Ctrl-C reaches the whole process group: the front drains and then closes its engines itself.
process.on('SIGINT', () => undefined);
// The front is gone (it crashed or was killed): nobody can reach this engine any more.
process.on('disconnect', () => process.exit(0));

send({
  type: 'hello',
  pid: process.pid,
  // Read only to report it: the front set it for this process, and /health shows what the engine saw.
  cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null,
});
