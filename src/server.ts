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
import { MainMetrics, type ModelSource } from './metrics/main-metrics.js';
import { resolveModel } from './model/resolve.js';
import { engineLabels, planModels, type EnginePlan, type ModelRef } from './engine/create.js';
import { ModelRegistry } from './models/registry.js';
import { ServedModel } from './models/served-model.js';
import { ConfigError } from './errors.js';
import { startTracing } from './tracing/tracing.js';

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
  const refs = await resolveModels(config, log);
  // Loaded only when tracing is on: off, the SDK is never imported.
  const tracing = config.tracing ? await startTracing(config.tracing, VERSION, log) : undefined;
  // NVML is opened once, here in the main thread (its library handle is process-wide).
  const nvml = Nvml.open(log, config.nvmlLibrary);
  let plans: EnginePlan[];
  try {
    plans = planModels(config.models, () => nvml?.devices().length);
  } catch (err) {
    nvml?.close();
    throw err;
  }
  // The process's one node-llama-cpp binary: the CPU build when every model runs in engine processes.
  const cpuFront = plans.every((p) => p.specs !== undefined);
  const models: ServedModel[] = [];
  // The main registry knows each model's id and engine processes now; its gauges read the models at scrapes.
  const sources: ModelSource[] = refs.map((ref, i) => ({
    id: ref.id,
    engineProcesses: engineLabels(plans[i]!),
    pool: () => models[i]!.pool(),
    resident: () => models[i]!.isResident,
    engineStatus: () => models[i]!.engineStatus(),
  }));
  const metrics = new MainMetrics({
    version: VERSION,
    timeBuckets: config.latencyBuckets,
    gpu: nvml,
    routes: COUNTED_ROUTES,
    models: sources,
  });
  const collector = new MetricsCollector(
    () => models.map((m) => ({ model: m.id, engines: m.engines })),
    metrics,
    { timeoutMs: config.metricsTimeoutSeconds * 1000 },
    log,
  );
  let stopping: Promise<void> | undefined;
  const servers: Servers = [undefined, undefined];
  const failed = new Set<string>();
  const changed = (m: ServedModel) => {
    registry.changed(m);
    if (m.state !== 'failed' || failed.has(m.id)) return;
    // A model that cannot be loaded leaves the others serving; with none left, the server stops (exit 1).
    failed.add(m.id);
    if (failed.size < models.length) return;
    log.fatal('no model could be loaded');
    process.exitCode = 1;
    shutdown('model load failure').catch((err: unknown) => log.error({ err }, 'shutdown failed'));
  };
  refs.forEach((ref, i) => models.push(new ServedModel(ref, { config, plan: plans[i]!, metrics, collector, log, changed, cpuFront })));
  const registry = new ModelRegistry(models, config.maxResidentModels, log);
  // The dashboard samples the same merged registry /metrics serves, every 2 s, into a short history: the whole
  // server's and each model's.
  const ids = models.map((m) => m.id);
  const history = config.dashboard ? new MetricsHistory(collector, ids, log) : undefined;
  const ctx: AppContext = {
    models: registry,
    bodyLimitBytes: config.bodyLimitBytes,
    limits: {
      maxTokens: config.maxTokensLimit,
      maxMessages: config.maxMessages,
      maxStop: config.maxStop,
      maxJsonDepth: config.maxJsonDepth,
    },
    schemaLimits: config.schemaLimits,
    apiKeys: config.apiKeys,
    metricsAuth: config.metricsAuth,
    corsOrigins: config.corsOrigins,
    hostPolicy: hostPolicy(config.allowedHosts, config.host),
    log,
    metrics,
    collector,
    history,
    tracing,
    draining: false,
  };
  const shutdown = (reason: string) => (stopping ??= drainAndStop(reason, { ctx, config, servers, history, nvml }));
  registry.start();
  const apiServer = httpServer(createApp(ctx), log, metrics);
  apiServer.keepAliveTimeout = 65_000;
  const api = await listen(apiServer, config.host, config.port);
  servers[0] = api.server;
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
  servers[1] = metricsServer?.server;
  log.info(
    {
      host: config.host,
      port: api.port,
      model: models[0]!.id,
      models: models.map((m, i) => ({
        id: m.id,
        onDemand: m.onDemand,
        engines: plans[i]!.specs?.map((s) => s.device),
        workers: m.settings.workers,
        sequences: m.settings.sequences,
        contextSize: m.settings.contextSize,
      })),
    },
    'listening',
  );
  if (metricsServer) log.info({ host: config.metricsHost, port: metricsServer.port }, 'metrics listening');
  history?.start();
  const loadStarted = performance.now();
  Promise.all(models.filter((m) => !m.onDemand).map((m) => m.whenReady())).then(
    () => log.info({ seconds: Number(((performance.now() - loadStarted) / 1000).toFixed(3)) }, 'all model workers ready'),
    // A load that fails is reported by the model (changed() above).
    () => {},
  );
  return { port: api.port, metricsPort: metricsServer?.port, shutdown };
}

/** Each model's source as a local file and its id; ids must differ (a file name can repeat another model's id). */
async function resolveModels(config: Config, log: Logger): Promise<ModelRef[]> {
  const refs: ModelRef[] = [];
  for (const m of config.models) {
    const resolved = await resolveModel(m.source, config.modelsDir, m.id, log);
    if (resolved.demo) {
      log.warn(
        { path: resolved.path, model: resolved.id },
        'serving the DEMO model: its weights are random; it replies with a fixed script, not language',
      );
    }
    if (refs.some((r) => r.id === resolved.id)) {
      throw new ConfigError(`--model: two models have the id '${resolved.id}'; name them with ID=SOURCE`);
    }
    // The draft model too is a file before any worker starts: a download never runs in a worker.
    const draft = m.speculation?.draftModel;
    const draftModelPath =
      draft === undefined ? undefined : (await resolveModel(draft, config.modelsDir, undefined, log, '--draft-model')).path;
    refs.push({ ...m, id: resolved.id, path: resolved.path, draftModelPath });
  }
  return refs;
}

/** The API listener and the metrics listener, once listening. */
type Servers = [http.Server | undefined, http.Server | undefined];

/**
 * Stops accepting, lets in-flight requests finish up to --drain-timeout, cancels the rest cooperatively,
 * and closes the engines only once they are idle.
 */
async function drainAndStop(
  reason: string,
  o: {
    ctx: AppContext;
    config: Config;
    servers: Servers;
    history: MetricsHistory | undefined;
    nvml: Nvml | undefined;
  },
): Promise<void> {
  const { models, log } = o.ctx;
  const dispatchers = models.list.map((m) => m.dispatcher);
  const active = () => dispatchers.reduce((sum, d) => sum + d.activeCount, 0);
  const idle = () => Promise.all(dispatchers.map((d) => d.idle()));
  const [api, metricsServer] = o.servers;
  log.info({ reason, inFlight: active() }, 'shutting down: draining in-flight requests');
  o.ctx.draining = true;
  o.history?.stop();
  models.close();
  for (const d of dispatchers) d.close();
  api?.close();
  api?.closeIdleConnections();
  const drained = await within(idle(), o.config.drainTimeoutSeconds * 1000);
  if (!drained) {
    log.warn({ remaining: active() }, 'drain timeout reached: cancelling the remaining requests');
    for (const d of dispatchers) d.cancelAll('shutdown');
    await within(idle(), CANCEL_GRACE_MS);
  }
  api?.closeAllConnections();
  metricsServer?.close();
  metricsServer?.closeAllConnections();
  // Only an idle pool may be closed: terminating a worker mid-decode aborts the process (ServedModel.close checks).
  await Promise.all(models.list.map((m) => m.close()));
  // The last spans (the drained requests') are exported before the process exits.
  await o.ctx.tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'exporting the last spans failed'));
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
