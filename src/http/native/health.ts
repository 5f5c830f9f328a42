/**
 * GET /health: readiness for probes and load balancers, and what each model is doing. 503 while the server
 * drains, while a model loaded at start has no worker ready yet, or while a model's tokenizer threads load its
 * vocabulary (an on-demand model's too: they are loaded at start, and they tell the model's kind). A model
 * that failed to load, or an on-demand model that is unloaded, does not hold the others back: a failure makes
 * the status `degraded`, and the server is unready only when no model can serve at all.
 */
import { Router } from 'express';
import { NotReadyError } from '../../errors.js';
import { inEngineProcesses, readyWorkers, totalWorkers } from '../../engine/status.js';
import type { ServedModel } from '../../models/served-model.js';
import type { AppContext } from '../context.js';
import { sendError } from '../middleware/error-handler.js';
import { ROUTES } from '../route-table.js';

function modelHealth(m: ServedModel) {
  const { dispatcher } = m;
  const engines = m.engines;
  return {
    id: m.id,
    kind: m.kind ?? null,
    state: m.state,
    onDemand: m.onDemand,
    workers: { ready: readyWorkers(engines), total: totalWorkers(engines) },
    requests: { running: dispatcher.runningCount, waiting: dispatcher.waitingCount },
    ...(m.loadError !== undefined && { error: m.loadError }),
    ...(engines.length > 0 &&
      inEngineProcesses(engines) && {
        engines: engines.map((e, i) => ({ ...e.status(), model: m.id, running: dispatcher.runningOnEngine(i) })),
      }),
  };
}

export function healthRoutes(ctx: AppContext): Router {
  const router = Router();

  router.get(ROUTES.health.path, (_req, res) => {
    if (ctx.draining) {
      sendError(res, new NotReadyError('The server is shutting down.'));
      return;
    }
    const models = ctx.models.list;
    const failed = models.filter((m) => m.state === 'failed' || m.prepare.loadError !== undefined);
    if (failed.length === models.length) {
      sendError(
        res,
        new NotReadyError(`No model could be loaded: ${failed.map((m) => `${m.id}: ${m.loadError ?? m.prepare.loadError}`).join('; ')}`),
      );
      return;
    }
    for (const m of models) {
      if (failed.includes(m)) continue;
      const engines = m.engines;
      if (!m.onDemand && readyWorkers(engines) === 0) {
        sendError(res, new NotReadyError(`The model '${m.id}' is loading (0 of ${totalWorkers(engines)} workers ready).`));
        return;
      }
      // Every request is tokenized by the tokenizer workers first (an on-demand model's too: they tell its kind).
      if (!m.prepare.ready) {
        sendError(res, new NotReadyError(`The tokenizer workers of '${m.id}' are loading the vocabulary.`));
        return;
      }
    }
    const each = models.map(modelHealth);
    const ready = each.reduce((sum, m) => sum + m.workers.ready, 0);
    const total = each.reduce((sum, m) => sum + m.workers.total, 0);
    const engines = each.flatMap((m) => m.engines ?? []);
    res.json({
      // Degraded: some worker or engine process is loading or restarting (the others serve meanwhile), or a model failed.
      status: ready < total || failed.length > 0 ? 'degraded' : 'ok',
      workers: { ready, total },
      requests: {
        running: each.reduce((sum, m) => sum + m.requests.running, 0),
        waiting: each.reduce((sum, m) => sum + m.requests.waiting, 0),
      },
      models: each,
      ...(engines.length > 0 && { engines }),
    });
  });

  return router;
}
