/** GET /v1/models, GET /v1/models/:id and GET /health. */
import { Router } from 'express';
import { NotFoundError, NotReadyError } from '../../errors.js';
import { inEngineProcesses, readyWorkers, totalWorkers } from '../../engine/status.js';
import type { AppContext } from '../context.js';
import { sendError } from '../error-handler.js';
import { ROUTES } from '../route-table.js';

export function infoRoutes(ctx: AppContext): Router {
  const router = Router();
  const model = () => ({ id: ctx.modelId, object: 'model', created: ctx.createdAt, owned_by: 'qwen-serve' });

  router.get(ROUTES.models.path, (_req, res) => {
    res.json({ object: 'list', data: [model()] });
  });

  router.get(ROUTES.model.path, (req, res) => {
    if (req.params.id !== ctx.modelId) throw new NotFoundError(`The model '${req.params.id}' does not exist.`, 'model_not_found', 'model');
    res.json(model());
  });

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
