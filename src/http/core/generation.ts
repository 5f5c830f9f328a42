/**
 * The path every dialect's generation request takes once it is mapped into the neutral GenerationRequest:
 * the answer's shape checked (errors name the dialect's fields), the model checked, features counted, the
 * prompts prepared by the tokenizer threads, and the choices run and rendered in the dialect's format.
 */
import type { Request, Response } from 'express';
import type { GenerateInput } from '../../shared/protocol.js';
import type { AppContext } from '../context.js';
import { bodySize } from '../middleware/body-size.js';
import { endpointLabel } from '../middleware/request-context.js';
import { ROUTES } from '../route-table.js';
import { requestModel } from './check-model.js';
import { traceOf } from './trace.js';
import { prepareChoices, type PreparedChoices } from './prepare.js';
import type { Renderer } from './renderer.js';
import { respond } from './respond.js';
import { samplingParams, type SamplingRequest } from './sampling.js';
import { featuresOf, outputConstraints, shapingParam, type ShapeRequest } from './shape.js';

/** A generation request in no dialect's words: what every API's request maps into. */
export interface GenerationRequest {
  /** The model the client named (none: the first text-generation model served). */
  model: string | null | undefined;
  inputs: GenerateInput[];
  /** Choices per input (default 1). */
  n?: number;
  sampling: SamplingRequest;
  shape: ShapeRequest;
  /** The prompts' field (`messages`, `input`, `prompt`) and the logprobs' field, for errors. */
  promptParam: string;
  logprobsParam?: string;
  stream: boolean;
  /** Completions `echo`: each prompt's text comes back with its answer. */
  echo?: boolean;
}

export async function serveGeneration(
  ctx: AppContext,
  req: Request,
  res: Response,
  g: GenerationRequest,
  renderer: (prepared: PreparedChoices, model: string) => Renderer,
): Promise<void> {
  const constraints = outputConstraints(g.shape, ctx.schemaLimits);
  const model = requestModel(ctx, res, g.model, 'generate');
  const endpoint = endpointLabel(req);
  ctx.metrics.features(model.id, endpoint, featuresOf(constraints, g.shape));
  const trace = traceOf(res);
  trace?.setAttributes({
    'gen_ai.operation.name': endpoint === ROUTES.completions.path ? 'text_completion' : 'chat',
    'gen_ai.request.model': g.model ?? model.id,
    'gen_ai.response.model': model.id,
    'gen_ai.request.max_tokens': g.sampling.maxTokens,
    'gen_ai.request.temperature': g.sampling.temperature ?? undefined,
    'gen_ai.request.top_p': g.sampling.topP ?? undefined,
    'gen_ai.request.seed': g.sampling.seed ?? undefined,
    'gen_ai.request.choice.count': g.n ?? 1,
    'qwen.stream': g.stream,
  });
  const prepared = await prepareChoices(ctx, model, {
    bodyBytes: bodySize(req),
    trace,
    inputs: g.inputs,
    n: g.n ?? 1,
    sampling: samplingParams(g.sampling),
    constraints,
    params: { prompt: g.promptParam, shaping: shapingParam(constraints, g.shape), logprobs: g.logprobsParam },
    echo: g.echo,
  });
  respond(model.dispatcher, res, {
    tasks: prepared.tasks,
    release: prepared.release,
    renderer: renderer(prepared, model.id),
    stream: g.stream,
    onToolCalls: (count) => ctx.metrics.toolCalls(model.id, count),
    trace,
    exemplars: { sink: ctx.metrics.exemplars, model: model.id },
  });
}
