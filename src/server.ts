/**
 * Wires the parts together and owns the lifecycle: resolve the model, start the engines (the worker
 * pool in this process, or one engine process per GPU), listen, and on shutdown drain (stop
 * accepting, let in-flight requests finish up to the drain timeout, cancel the rest cooperatively)
 * before closing the then-idle engines.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import express from 'express';
import { VERSION, type Config } from './config/config.js';
import { MetricsHistory } from './dashboard/history.js';
import { Nvml } from './gpu/nvml.js';
import { createApp, notFound } from './http/app.js';
import { bearerAuth } from './http/middleware/auth.js';
import { answerClientErrors } from './http/middleware/client-errors.js';
import { errorHandler } from './http/middleware/error-handler.js';
import type { AppContext } from './http/context.js';
import { hostCheck, hostPolicy, type HostPolicy } from './http/middleware/host-check.js';
import { methodCheck } from './http/middleware/method-check.js';
import { requestContext } from './http/middleware/request-context.js';
import { COUNTED_ROUTES, METRICS_PORT_ROUTES } from './http/route-table.js';
import { MetricsCollector } from './engine/metrics-collector.js';
import { metricsRouter } from './metrics/exposition.js';
import { MainMetrics } from './metrics/main-metrics.js';
import { resolveModel } from './model/resolve.js';
import { Dispatcher, type DispatchObserver } from './dispatch/dispatcher.js';
import { createEngines } from './engine/create.js';
import type { Engine } from './engine/engine.js';
import { inEngineProcesses, readyWorkers, totalWorkers } from './engine/status.js';
import { Preparer } from './prepare/preparer.js';

/** After cancelling, how long workers get to stop (they stop within one decode step). */
const CANCEL_GRACE_MS = 10_000;

export interface RunningServer {
  port: number;
  /** The dedicated metrics port, when enabled. */
  metricsPort?: number;
  /** Drains and stops; resolves when the pool is closed. */
  shutdown(reason: string): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const model = await resolveModel(config.model, config.modelsDir, config.modelId, log);
  if (model.demo) {
    log.warn({ path: model.path }, 'serving the DEMO model: its weights are random; it replies with a fixed script, not language');
  }
  // NVML is opened once, here in the main thread (its library handle is process-wide).
  const nvml = Nvml.open(log, config.nvmlLibrary);
  let engines: Engine[];
  try {
    engines = createEngines(config, model, log, () => nvml?.devices().length);
  } catch (err) {
    nvml?.close();
    throw err;
  }
  const { dispatcher, metrics } = admission(config, model.id, engines, nvml, log);
  const collector = new MetricsCollector(engines, metrics, { timeoutMs: config.metricsTimeoutSeconds * 1000 }, log);
  // The dashboard samples the same merged registry /metrics serves, every 2 s, into a short history.
  const history = config.dashboard ? new MetricsHistory(collector, log) : undefined;
  const ctx: AppContext = {
    modelId: model.id,
    createdAt: Math.floor(Date.now() / 1000),
    bodyLimitBytes: config.bodyLimitBytes,
    limits: {
      maxTokens: config.maxTokensLimit,
      maxMessages: config.maxMessages,
      maxStop: config.maxStop,
      maxJsonDepth: config.maxJsonDepth,
    },
    contextSize: config.contextSize,
    budgets: { contextSize: config.contextSize, maxRequestTokens: config.maxRequestTokens, maxRequestLogprobs: config.maxRequestLogprobs },
    schemaLimits: config.schemaLimits,
    apiKeys: config.apiKeys,
    metricsAuth: config.metricsAuth,
    corsOrigins: config.corsOrigins,
    hostPolicy: hostPolicy(config.allowedHosts, config.host),
    dispatcher,
    prepare: new Preparer(
      {
        threads: config.tokenizerThreads,
        // Never refuse a request the dispatcher would take: every sequence's worth plus its queue.
        maxQueue: config.maxQueue + config.sequences * totalWorkers(engines),
        modelPath: model.path,
        // The process's one node-llama-cpp binary: the model workers' in-process, the CPU build in the front of engine processes.
        gpu: inEngineProcesses(engines) ? 'off' : config.gpu,
        faults: config.testFaults,
        logLevel: config.logLevel,
        grammarCacheSize: config.grammarCacheSize,
        maxGrammarRules: config.maxGrammarRules,
        contextSize: config.contextSize,
      },
      log,
      { prepared: (op, lane, seconds) => metrics.prepared(op, lane, seconds) },
    ),
    engines,
    log,
    metrics,
    collector,
    history,
    draining: false,
  };
  const apiServer = httpServer(createApp(ctx), log, metrics);
  apiServer.keepAliveTimeout = 65_000;
  const api = await listen(apiServer, config.host, config.port);
  const metricsServer =
    config.metricsPort === 0
      ? undefined
      : await listenMetrics(collector, {
          host: config.metricsHost,
          port: config.metricsPort,
          keys: config.metricsAuth ? config.apiKeys : [],
          hostPolicy: hostPolicy(config.allowedHosts, config.metricsHost),
          log,
          metrics,
        });
  log.info(
    {
      host: config.host,
      port: api.port,
      model: model.id,
      engines: inEngineProcesses(engines) ? engines.map((e) => e.device) : undefined,
      workers: config.workers,
      sequences: config.sequences,
      contextSize: config.contextSize,
    },
    'listening',
  );
  if (metricsServer) log.info({ host: config.metricsHost, port: metricsServer.port }, 'metrics listening');
  history?.start();
  const loadStarted = performance.now();
  Promise.all(engines.map((e) => e.whenReady())).then(
    () => log.info({ seconds: Number(((performance.now() - loadStarted) / 1000).toFixed(3)) }, 'all model workers ready'),
    // A load that fails is reported (and shuts the server down) by the engine's loadFailed event below.
    () => {},
  );

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string) =>
    (stopping ??= drainAndStop(reason, { ctx, config, servers: [api.server, metricsServer?.server], history, nvml }));
  for (const engine of engines) {
    engine.on('loadFailed', (message) => {
      log.fatal({ message, engine: engine.index }, 'a model worker could not load the model');
      process.exitCode = 1;
      shutdown('model load failure').catch((err: unknown) => log.error({ err }, 'shutdown failed'));
    });
  }
  return { port: api.port, metricsPort: metricsServer?.port, shutdown };
}

/** The front's admission over the engines, and the main registry that measures it. */
function admission(config: Config, modelId: string, engines: Engine[], nvml: Nvml | undefined, log: Logger) {
  // The observer is called only once requests flow, after `metrics` exists.
  const observer: DispatchObserver = {
    queueFull: () => metrics.rejected('queue_full'),
    started: (seconds) => metrics.queued(seconds),
    ended: (outcome) => (outcome.kind === 'finished' ? metrics.finished(outcome.reason) : metrics.rejected(outcome.reason)),
  };
  const dispatcher = new Dispatcher(
    engines,
    { maxQueue: config.maxQueue, requestTimeoutSeconds: config.requestTimeoutSeconds },
    log,
    observer,
  );
  const metrics = new MainMetrics({
    modelId,
    version: VERSION,
    timeBuckets: config.latencyBuckets,
    gpu: nvml,
    engines: inEngineProcesses(engines) ? { labels: engines.map((e) => e.labels!), up: (i) => engines[i]!.readySequences > 0 } : undefined,
    routes: COUNTED_ROUTES,
    pool: () => ({
      running: dispatcher.runningCount,
      waiting: dispatcher.waitingCount,
      readySequences: dispatcher.readySequences,
      workersReady: readyWorkers(engines),
    }),
  });
  for (const engine of engines) {
    engine.on('ready', (w) => metrics.setLlamaCpp(w.llamaCpp));
    engine.on('exited', () => metrics.engineRestarted(engine.labels!));
  }
  return { dispatcher, metrics };
}

/**
 * Stops accepting, lets in-flight requests finish up to --drain-timeout, cancels the rest cooperatively,
 * and closes the engines only once they are idle.
 */
async function drainAndStop(
  reason: string,
  o: {
    ctx: AppContext;
    config: Config;
    servers: [http.Server, http.Server | undefined];
    history: MetricsHistory | undefined;
    nvml: Nvml | undefined;
  },
): Promise<void> {
  const { dispatcher, engines, log } = o.ctx;
  const [api, metricsServer] = o.servers;
  log.info({ reason, inFlight: dispatcher.activeCount }, 'shutting down: draining in-flight requests');
  o.ctx.draining = true;
  o.history?.stop();
  dispatcher.close();
  api.close();
  api.closeIdleConnections();
  const drained = await within(dispatcher.idle(), o.config.drainTimeoutSeconds * 1000);
  if (!drained) {
    log.warn({ remaining: dispatcher.activeCount }, 'drain timeout reached: cancelling the remaining requests');
    dispatcher.cancelAll('shutdown');
    await within(dispatcher.idle(), CANCEL_GRACE_MS);
  }
  api.closeAllConnections();
  metricsServer?.close();
  metricsServer?.closeAllConnections();
  // Only an idle pool may be closed: terminating a worker mid-decode aborts the process.
  if (dispatcher.activeCount === 0) await Promise.all(engines.map((e) => e.close()));
  await o.ctx.prepare.close();
  o.nvml?.close();
  log.info('stopped');
}

/** Listens on host:port; resolves with the port actually bound (0 picks one). */
async function listen(server: http.Server, host: string, port: number): Promise<{ server: http.Server; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/**
 * Whether `promise` settled within `ms`. The timer is cleared when it does: a pending drain timer would
 * otherwise keep the process alive for the whole --drain-timeout after a shutdown that needed none.
 */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An HTTP server for an express app. Node's parser errors get a JSON answer (client-errors.ts), and a
 * missing Host is left to the app's host check (a 403 naming --allowed-hosts, instead of Node's bare 400).
 */
function httpServer(app: express.Express, log: Logger, metrics: MainMetrics): http.Server {
  const server = http.createServer({ requireHostHeader: false }, app);
  answerClientErrors(server, log, (code) => metrics.clientError(code));
  return server;
}

/** The dedicated metrics listener (the tutorial's port 8000): /metrics only. */
async function listenMetrics(
  collector: MetricsCollector,
  o: { host: string; port: number; keys: string[]; hostPolicy: HostPolicy; log: Logger; metrics: MainMetrics },
): Promise<{ server: http.Server; port: number }> {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestContext(METRICS_PORT_ROUTES, o.log));
  app.use(hostCheck(o.hostPolicy, o.log));
  app.use(bearerAuth({ keys: o.keys, protectMetrics: true, onRejected: () => o.metrics.rejected('unauthorized') }));
  app.use(methodCheck());
  app.use(metricsRouter(collector));
  app.use(notFound(' (this port serves /metrics)'));
  app.use(errorHandler(o.metrics));

  return listen(httpServer(app, o.log, o.metrics), o.host, o.port);
}
