/**
 * GET /dashboard (the page), /dashboard/assets/* (its scripts and styles, and uPlot from node_modules)
 * and /dashboard/data (the JSON the page polls; docs/dashboard.md). The page and its assets are static
 * and carry no data, so they stay open under --api-key; /dashboard/data needs the key like the API.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import compression from 'compression';
import { Router, type Response } from 'express';
import { VERSION } from '../config/config.js';
import { totalWorkers } from '../engine/status.js';
import { InvalidRequestError } from '../errors.js';
import { ROUTES } from '../http/route-table.js';
import type { Engine } from '../engine/engine.js';
import type { ModelKind } from '../models/served-model.js';
import { HISTORY_SECONDS, INTERVAL_SECONDS, WINDOW_SECONDS, type MetricsHistory } from './history.js';

/**
 * The page's files live in src/dashboard/public (not compiled: tsc copies nothing else). From the
 * compiled dist/src/dashboard/ they are three levels up; run from source, next door.
 */
const PUBLIC = [new URL('../../../src/dashboard/public/', import.meta.url), new URL('./public/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((dir) => fs.existsSync(path.join(dir, 'index.html')));

/**
 * A file of a runtime dependency, served as it is from node_modules: uPlot's prebuilt files, and
 * eventsource-parser's ESM build (one file without imports) for the playground.
 */
function fromPackage(file: string): string | undefined {
  try {
    return createRequire(import.meta.url).resolve(file);
  } catch {
    return undefined;
  }
}

/** eventsource-parser's ESM build: its exports map gives require() the CommonJS one, so find it from package.json. */
function eventsourceParser(): string | undefined {
  const manifest = fromPackage('eventsource-parser/package.json');
  return manifest && path.join(path.dirname(manifest), 'dist/index.js');
}

const ASSETS: Record<string, string | undefined> = {
  'auth.js': PUBLIC && path.join(PUBLIC, 'auth.js'),
  'dashboard.css': PUBLIC && path.join(PUBLIC, 'dashboard.css'),
  'dashboard.js': PUBLIC && path.join(PUBLIC, 'dashboard.js'),
  'charts.js': PUBLIC && path.join(PUBLIC, 'charts.js'),
  'format.js': PUBLIC && path.join(PUBLIC, 'format.js'),
  'playground.js': PUBLIC && path.join(PUBLIC, 'playground.js'),
  'uPlot.iife.min.js': fromPackage('uplot/dist/uPlot.iife.min.js'),
  'uPlot.min.css': fromPackage('uplot/dist/uPlot.min.css'),
  'eventsource-parser.js': eventsourceParser(),
};

/** Routes bearerAuth leaves open: the page and its static assets (no data in them). */
export const DASHBOARD_OPEN_ROUTES = [ROUTES.dashboard.template, ROUTES.dashboardAsset.template];

// Same-origin everything; the key in sessionStorage is readable only by these scripts.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function sendStatic(res: Response, file: string | undefined, csp = false): void {
  res.set('X-Content-Type-Options', 'nosniff').set('Cache-Control', 'no-cache');
  if (csp) res.set('Content-Security-Policy', CSP).set('Referrer-Policy', 'no-referrer');
  if (!file) {
    res
      .status(500)
      .type('text/plain')
      .send(
        'This dashboard file is missing from the installation (src/dashboard/public, node_modules/uplot, node_modules/eventsource-parser).',
      );
    return;
  }
  res.sendFile(file);
}

/**
 * What the dashboard reads from the server (a subset of the HTTP side's context, without importing it): the
 * served models, what each is for (undefined until its vocabulary is read) and its engines now (an unloaded
 * on-demand model has none).
 */
export interface DashboardSource {
  models: { list: readonly { id: string; kind: ModelKind | undefined; engines: readonly Engine[] }[] };
}

export function dashboardRoutes(ctx: DashboardSource, history: MetricsHistory): Router {
  const router = Router();
  router.get(ROUTES.dashboard.path, (_req, res) => sendStatic(res, PUBLIC && path.join(PUBLIC, 'index.html'), true));
  router.get(ROUTES.dashboardAsset.path, (req, res, next) => {
    const name = req.params.name;
    if (typeof name !== 'string' || !Object.hasOwn(ASSETS, name)) return next();
    sendStatic(res, ASSETS[name]);
  });
  router.get(ROUTES.dashboardData.path, compression(), (req, res) => {
    const since = Number(req.query.since);
    const model = selectedModel(ctx, req.query.model);
    res.set('Cache-Control', 'no-store').json(dashboardData(ctx, history, Number.isFinite(since) ? since : 0, model));
  });
  return router;
}

/**
 * The model `?model=` names; undefined for the whole server (absent, empty, or `all` unless a served model has
 * that id). Anything else is a 400 naming `model`, with the served ids.
 */
function selectedModel(ctx: DashboardSource, query: unknown): string | undefined {
  if (query === undefined || query === '') return undefined;
  if (typeof query !== 'string') throw new InvalidRequestError('model must be given once, as one model id.', 'model');
  if (ctx.models.list.some((m) => m.id === query)) return query;
  if (query === 'all') return undefined;
  const ids = ctx.models.list.map((m) => `'${m.id}'`).join(', ');
  throw new InvalidRequestError(
    `The model '${query.slice(0, 200)}' is not served here; this server serves ${ids} (leave model out for the whole server).`,
    'model',
    'model_not_found',
  );
}

/**
 * The body of GET /dashboard/data (docs/dashboard.md): the latest sample, totals, workers, GPUs and the points
 * after `since`, of the whole server or of one model (undefined: the whole server).
 */
function dashboardData(ctx: DashboardSource, history: MetricsHistory, since: number, model: string | undefined) {
  const last = history.latest(model);
  const reading = last?.reading;
  const rates = history.workerRates();
  const models = ctx.models.list;
  // Slots are per model: each model's workers are numbered from 0.
  const workers = models
    .filter((m) => model === undefined || m.id === model)
    .flatMap((m) => Array.from({ length: totalWorkers(m.engines) }, (_, slot) => ({ model: m.id, slot })))
    .map(({ model: id, slot }) => {
      const w = reading?.workers.find((x) => x.model === id && x.slot === slot);
      return {
        model: id,
        slot,
        state: w ? ('ready' as const) : ('loading' as const),
        kvCacheUsage: w?.kvCacheUsage ?? null,
        generationTokens: w?.generationTokens ?? null,
        generationTokensPerSecond: w ? (rates.get(w.workerId) ?? 0) : null,
      };
    });
  return {
    /** The model these numbers are of; null: the whole server. */
    model: model ?? null,
    models: models.map((m) => ({ id: m.id, kind: m.kind ?? null })),
    version: VERSION,
    sampledAt: reading?.t ?? null,
    intervalSeconds: INTERVAL_SECONDS,
    historySeconds: HISTORY_SECONDS,
    windowSeconds: WINDOW_SECONDS,
    current: last?.point ?? null,
    totals: reading
      ? {
          requests: reading.requests,
          promptTokens: reading.promptTokens,
          generationTokens: reading.generationTokens,
          draftTokens: reading.draftTokens,
          acceptedTokens: reading.acceptedTokens,
          finished: reading.finished,
          rejected: reading.rejected,
          workerRestarts: reading.workerRestarts,
          collectTimeouts: reading.collectTimeouts,
        }
      : null,
    window: history.recent(model) ?? null,
    workers: { total: workers.length, ready: reading?.workersReady ?? 0, list: workers },
    gpus: reading?.gpus ?? [],
    history: history.points(since, model),
  };
}

export type DashboardData = ReturnType<typeof dashboardData>;
