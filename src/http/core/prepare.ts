/**
 * From a validated request to the tasks the dispatcher queues: the tokenizer workers tokenize its prompts
 * and compose its grammars (off the main thread), then the main thread checks what only needs the token
 * counts — the context and the request's budgets (budget.ts) — so a request that cannot be served is a
 * 400 before it takes a place in the queue.
 */
import { ContextLengthExceededError } from '../../errors.js';
import type { ShapingRequest } from '../../shared/prepare-protocol.js';
import type { GenerateInput, OutputConstraints, SamplingParams } from '../../shared/protocol.js';
import type { ServedModel } from '../../models/served-model.js';
import { nowMs } from '../../shared/protocol.js';
import type { RequestTrace } from '../../tracing/tracing.js';
import type { AppContext } from '../context.js';
import { choiceMaxTokens } from './budget.js';
import { invalidValue } from './validation.js';
import type { ChoiceTask } from './respond.js';

export type ChoicesRequest = {
  inputs: GenerateInput[];
  /** Choices per input. */
  n: number;
  constraints: OutputConstraints;
  /** Request fields, for errors: the prompts, the schemas (tools / response_format / text.format), logprobs. */
  params: { prompt: string; shaping?: string; logprobs?: string };
  /** Token-id inputs come back as text too (completions `echo`). */
  echo?: boolean;
  /** Size of the request's body: large ones are prepared in a lane of their own. */
  bodyBytes: number;
  /** The request's trace (tracing on and sampled): the tokenizer job becomes a `prepare` span. */
  trace?: RequestTrace;
} & ({ mode?: 'generate'; sampling: SamplingParams } | { mode: 'embed' });

export interface PreparedChoices {
  tasks: ChoiceTask[];
  /** Gives back the request's place in the dispatcher (respond() calls it just before submitting). */
  release: () => void;
  /** Each choice's prompt as text (with `echo`). */
  echo?: string[];
}

/**
 * Prepares a request's tasks while it holds a place per choice in the dispatcher (Dispatcher.reserve: under
 * overload the excess is refused at once, before any tokenizing). The places are given back by respond()
 * right before it submits the tasks, so no other request can take them in between; or here, when preparing
 * fails.
 */
export async function prepareChoices(ctx: AppContext, model: ServedModel, r: ChoicesRequest): Promise<PreparedChoices> {
  const places = r.inputs.length * r.n;
  const { dispatcher } = model;
  // A request the server could never admit whole is the client's to split, not a 429 to retry forever.
  if (places > dispatcher.maxPlaces) {
    const param = r.n > 1 ? 'n' : r.params.prompt;
    throw invalidValue(
      param,
      `this request has ${places} choices (inputs × n), and the model '${model.id}' admits at most ${dispatcher.maxPlaces} at once (workers × --sequences, plus --max-queue); send fewer per request`,
    );
  }
  const release = dispatcher.reserve(places);
  try {
    return { ...(await prepareTasks(ctx, model, r)), release };
  } catch (err) {
    release();
    throw err;
  }
}

async function prepareTasks(ctx: AppContext, model: ServedModel, r: ChoicesRequest): Promise<Omit<PreparedChoices, 'release'>> {
  const { constraints: c } = r;
  const shaping: ShapingRequest | undefined =
    c.json || c.tools ? { json: c.json, tools: c.tools, param: r.params.shaping ?? r.params.prompt } : undefined;
  const trace = r.trace;
  const preparing = nowMs();
  const { value } = await model.prepare.run(
    {
      op: 'prompts',
      inputs: r.inputs,
      tools: c.tools?.functions,
      shaping,
      echo: r.echo,
      content: trace?.recordContent,
      param: r.params.prompt,
      fitContext: true,
    },
    r.bodyBytes,
  );
  if (value.grammarCached !== undefined) ctx.metrics.grammarComposed(model.id, value.grammarCached);
  // Tokenizing, the chat template and the grammar (tools, response_format) happen in one tokenizer job.
  trace?.child({
    name: 'prepare',
    startMs: preparing,
    endMs: nowMs(),
    attributes: {
      'qwen.prompts': value.prompts.length,
      'qwen.grammar': value.shaping !== undefined,
      'qwen.grammar.cached': value.grammarCached,
      'gen_ai.prompt': value.content,
    },
  });
  if (r.mode === 'embed') {
    const tasks = value.prompts.map((p, i): ChoiceTask => {
      embedFits(p.tokens.length, model.budgets.contextSize, paramOf(r, i));
      return {
        kind: 'embed',
        prompt: p.tokens,
        promptParam: paramOf(r, i),
        fault: value.fault,
        countsPrompt: true,
      };
    });
    return { tasks };
  }
  const { sampling } = r;
  const maxTokens = choiceMaxTokens(
    {
      promptTokens: value.prompts.map((p) => p.tokens.length),
      n: r.n,
      maxTokens: sampling.maxTokens,
      maxTokensParam: sampling.maxTokensParam,
      promptParam: r.params.prompt,
      logprobsTop: c.logprobs?.top,
      logprobsParam: r.params.logprobs,
    },
    model.budgets,
  );
  const tasks = value.prompts.flatMap((p, i) =>
    Array.from(
      { length: r.n },
      (_, j): ChoiceTask => ({
        kind: 'generate',
        prompt: p.tokens,
        promptParam: paramOf(r, i),
        // With a seed, choice j samples with seed + j: the same seed for all would give n identical answers.
        sampling: { ...sampling, maxTokens: maxTokens[i]!, ...(sampling.seed !== undefined && { seed: (sampling.seed + j) % 2 ** 32 }) },
        shaping: value.shaping,
        logprobs: c.logprobs,
        fault: value.fault,
        countsPrompt: j === 0,
      }),
    ),
  );
  const echo = r.echo
    ? r.inputs.flatMap((input, i) => Array<string>(r.n).fill(input.kind === 'text' ? input.prompt : (value.prompts[i]!.echo ?? '')))
    : undefined;
  return { tasks, echo };
}

/** The request field of input `i` (`input.2`), as inputsOf() recorded it, or the prompts' field. */
const paramOf = (r: ChoicesRequest, i: number): string => {
  const input = r.inputs[i]!;
  return (input.kind !== 'chat' && input.param) || r.params.prompt;
};

/** An embedding input must fit one sequence with a cell to spare (the worker checks again with BOS/EOS). */
function embedFits(tokens: number, contextSize: number, param: string): void {
  if (tokens >= contextSize) throw ContextLengthExceededError.embeddingInput(contextSize, param, tokens);
}
