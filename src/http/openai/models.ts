/** GET /v1/models and GET /v1/models/:id. */
import { Router, type Request } from 'express';
import { NotFoundError } from '../../errors.js';
import type { AppContext } from '../context.js';
import { ROUTES } from '../route-table.js';

export function modelsRoutes(ctx: AppContext): Router {
  const router = Router();
  const model = () => ({ id: ctx.modelId, object: 'model', created: ctx.createdAt, owned_by: 'qwen-serve' });

  router.get(ROUTES.models.path, (_req, res) => {
    res.json({ object: 'list', data: [model()] });
  });

  router.get(ROUTES.model.path, (req: Request<{ id: string }>, res) => {
    const { id } = req.params;
    if (id !== ctx.modelId) throw new NotFoundError(`The model '${id}' does not exist.`, 'model_not_found', 'model');
    res.json(model());
  });

  return router;
}
