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
import { ROUTES } from '../http/route-table.js';
import type { Engine } from '../engine/engine.js';
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

/** What the dashboard reads from the server (a subset of the HTTP side's context, without importing it). */
/** The served models and their engines now (an unloaded on-demand model has none). */
export interface DashboardSource {
  models: { list: readonly { id: string; engines: readonly Engine[] }[] };
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
    res.set('Cache-Control', 'no-store').json(dashboardData(ctx, history, Number.isFinite(since) ? since : 0));
  });
  return router;
}

/** The body of GET /dashboard/data (docs/dashboard.md): the latest sample, totals, workers, GPUs and the points after `since`. */
function dashboardData(ctx: DashboardSource, history: MetricsHistory, since: number) {
  const last = history.latest();
  const reading = last?.reading;
  const rates = history.workerRates();
  const models = ctx.models.list;
  // Slots are per model: each model's workers are numbered from 0.
  const workers = models
    .flatMap((m) => Array.from({ length: totalWorkers(m.engines) }, (_, slot) => ({ model: m.id, slot })))
    .map(({ model, slot }) => {
      const w = reading?.workers.find((x) => x.model === model && x.slot === slot);
      return {
        model,
        slot,
        state: w ? ('ready' as const) : ('loading' as const),
        kvCacheUsage: w?.kvCacheUsage ?? null,
        generationTokens: w?.generationTokens ?? null,
        generationTokensPerSecond: w ? (rates.get(w.workerId) ?? 0) : null,
      };
    });
  return {
    model: models[0]!.id,
    models: models.map((m) => m.id),
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
          finished: reading.finished,
          rejected: reading.rejected,
          workerRestarts: reading.workerRestarts,
          collectTimeouts: reading.collectTimeouts,
        }
      : null,
    window: history.recent() ?? null,
    workers: { total: workers.length, ready: reading?.workersReady ?? 0, list: workers },
    gpus: reading?.gpus ?? [],
    history: history.points(since),
  };
}

export type DashboardData = ReturnType<typeof dashboardData>;
