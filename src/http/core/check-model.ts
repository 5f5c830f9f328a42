import { NotFoundError, NotReadyError } from '../../errors.js';
import { readyWorkers } from '../../engine/status.js';
import type { AppContext } from '../context.js';

/** A generation request must name the served model (or none), and a worker must be ready. */
export function checkModel(ctx: AppContext, model: string | null | undefined): void {
  if (model != null && model !== ctx.modelId) {
    throw new NotFoundError(`The model '${model}' does not exist; this server serves '${ctx.modelId}'.`, 'model_not_found', 'model');
  }
  if (readyWorkers(ctx.engines) === 0) throw new NotReadyError();
}
