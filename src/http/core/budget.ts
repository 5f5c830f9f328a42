/**
 * How many tokens each choice of a request may generate, decided on the main thread before the request is
 * queued, from its prompts' token counts (known once the tokenizer worker has run):
 *
 * - the context: prompt + max_tokens must fit --context-size (400 context_length_exceeded otherwise; nothing
 *   is truncated);
 * - the request's budget: choices × max_tokens ≤ --max-request-tokens, and with logprobs
 *   choices × max_tokens × (1 + top_logprobs) ≤ --max-request-logprobs. One request cannot hold every
 *   sequence for the whole context, nor build an answer of tens of megabytes in the main thread.
 *
 * An explicit max_tokens beyond a bound is the client's error (400 naming the field, the numbers and the
 * flag). Without one, each choice gets the rest of the context capped by its share of the budgets (the
 * answer then ends with finish_reason "length").
 */
import { ContextLengthExceededError, RequestBudgetError } from '../../errors.js';

export interface BudgetLimits {
  contextSize: number;
  maxRequestTokens: number;
  maxRequestLogprobs: number;
}

export interface BudgetRequest {
  /** Tokens of each prompt. */
  promptTokens: readonly number[];
  /** Choices per prompt (n). */
  n: number;
  /** undefined: as many as fit. */
  maxTokens: number | undefined;
  maxTokensParam: string;
  promptParam: string;
  /** Alternatives per token when logprobs are asked for (0 = the sampled token's alone). */
  logprobsTop?: number;
  logprobsParam?: string;
}

/** max_tokens for the choices of each prompt, in prompt order. */
export function choiceMaxTokens(r: BudgetRequest, limits: BudgetLimits): number[] {
  const choices = r.promptTokens.length * r.n;
  const perLogprob = r.logprobsTop === undefined ? undefined : 1 + r.logprobsTop;
  const shares = [Math.floor(limits.maxRequestTokens / choices)];
  if (perLogprob !== undefined) shares.push(Math.floor(limits.maxRequestLogprobs / (choices * perLogprob)));
  if (r.maxTokens !== undefined) checkBudgets(r, r.maxTokens, choices, perLogprob, limits);
  return r.promptTokens.map((prompt) => {
    const room = contextRoom(prompt, r, limits.contextSize);
    if (r.maxTokens !== undefined) {
      if (r.maxTokens > room) {
        throw new ContextLengthExceededError(
          `This model's maximum context length is ${limits.contextSize} tokens (--context-size). However, you requested ${prompt + r.maxTokens} tokens (${prompt} in the prompt, ${r.maxTokens} for ${r.maxTokensParam}). Lower ${r.maxTokensParam} to at most ${room} or shorten the prompt.`,
          r.maxTokensParam,
        );
      }
      return r.maxTokens;
    }
    const capped = Math.min(room, ...shares);
    if (capped < 1) {
      // Only possible when the choices alone exhaust a budget: say which one.
      throw budgetError(r, 1, choices, perLogprob, limits);
    }
    return capped;
  });
}

/** Tokens left for the answer after `prompt`; a prompt that fills the context is a 400. */
function contextRoom(prompt: number, r: BudgetRequest, contextSize: number): number {
  if (prompt >= contextSize) {
    throw new ContextLengthExceededError(
      `This model's maximum context length is ${contextSize} tokens (--context-size); the prompt has ${prompt} tokens. Shorten the prompt.`,
      r.promptParam,
    );
  }
  return contextSize - prompt;
}

function checkBudgets(r: BudgetRequest, maxTokens: number, choices: number, perLogprob: number | undefined, limits: BudgetLimits): void {
  if (choices * maxTokens > limits.maxRequestTokens) throw budgetError(r, maxTokens, choices, perLogprob, limits);
  if (perLogprob !== undefined && choices * maxTokens * perLogprob > limits.maxRequestLogprobs) {
    throw budgetError(r, maxTokens, choices, perLogprob, limits);
  }
}

function budgetError(r: BudgetRequest, maxTokens: number, choices: number, perLogprob: number | undefined, limits: BudgetLimits) {
  const what = choices === 1 ? `${r.maxTokensParam}=${maxTokens}` : `${choices} choices × ${r.maxTokensParam}=${maxTokens}`;
  if (choices * maxTokens > limits.maxRequestTokens) {
    return new RequestBudgetError(
      `${r.maxTokensParam}: ${what} is ${choices * maxTokens} tokens; one request may generate at most ${limits.maxRequestTokens} (--max-request-tokens). Lower ${r.maxTokensParam}${choices > 1 ? ' or n' : ''}.`,
      r.maxTokensParam,
    );
  }
  const total = choices * maxTokens * perLogprob!;
  const param = r.logprobsParam ?? 'logprobs';
  return new RequestBudgetError(
    `${param}: ${what} with ${perLogprob! - 1} alternatives per token is ${total} log probabilities; one request may return at most ${limits.maxRequestLogprobs} (--max-request-logprobs). Lower ${r.maxTokensParam}, ${param}${choices > 1 ? ' or n' : ''}.`,
    param,
  );
}
