/** GET /health: readiness for probes and load balancers, and what the server is doing. */
import { Router } from 'express';
import { NotReadyError } from '../../errors.js';
import { inEngineProcesses, readyWorkers, totalWorkers } from '../../engine/status.js';
import type { AppContext } from '../context.js';
import { sendError } from '../middleware/error-handler.js';
import { ROUTES } from '../route-table.js';

export function healthRoutes(ctx: AppContext): Router {
  const router = Router();

  router.get(ROUTES.health.path, (_req, res) => {
    const ready = readyWorkers(ctx.engines);
    const workers = totalWorkers(ctx.engines);
    if (ctx.draining) {
      sendError(res, new NotReadyError('The server is shutting down.'));
      return;
    }
    if (ready === 0) {
      sendError(res, new NotReadyError(`The model is loading (0 of ${workers} workers ready).`));
      return;
    }
    // Every request is tokenized by the tokenizer workers first: without one ready, none can be served.
    if (!ctx.prepare.ready) {
      sendError(res, new NotReadyError('The tokenizer workers are loading the vocabulary.'));
      return;
    }
    res.json({
      // Degraded: some worker or engine process is loading or restarting; the others serve meanwhile.
      status: ready < workers ? 'degraded' : 'ok',
      workers: { ready, total: workers },
      requests: { running: ctx.dispatcher.runningCount, waiting: ctx.dispatcher.waitingCount },
      ...(inEngineProcesses(ctx.engines) && {
        engines: ctx.engines.map((e) => ({ ...e.status(), running: ctx.dispatcher.runningOnEngine(e.index) })),
      }),
    });
  });

  return router;
}
