/** GET /v1/models and GET /v1/models/:id: every served model, with what it is for (`kind`: generate or embed). */
import { Router, type Request } from 'express';
import { NotFoundError } from '../../errors.js';
import type { ServedModel } from '../../models/served-model.js';
import type { AppContext } from '../context.js';
import { ROUTES } from '../route-table.js';

const describe = (m: ServedModel) => ({ id: m.id, object: 'model', created: m.createdAt, owned_by: 'qwen-serve', kind: m.kind ?? null });

export function modelsRoutes(ctx: AppContext): Router {
  const router = Router();

  router.get(ROUTES.models.path, (_req, res) => {
    res.json({ object: 'list', data: ctx.models.list.map(describe) });
  });

  router.get(ROUTES.model.path, (req: Request<{ id: string }>, res) => {
    const model = ctx.models.get(req.params.id);
    if (!model) throw new NotFoundError(`The model '${req.params.id.slice(0, 200)}' does not exist.`, 'model_not_found', 'model');
    res.json(describe(model));
  });

  return router;
}
