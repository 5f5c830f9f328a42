/**
 * What each dialect supplies to the shared response path (respond.ts, stream-output.ts): its wire format.
 */
import type { Usage } from '../../dispatch/job.js';
import type { ApiError } from '../../errors.js';
import type { FinishReason, TokenLogprob, ToolCallDelta } from '../../shared/protocol.js';
import type { Answer } from './answer.js';

/** One server-sent event: `event:` (omitted for OpenAI's data-only streams) and its data. */
export interface StreamEvent {
  event?: string;
  data: object | string;
}

/** Turns the answers of a request into one API's wire format. */
export interface Renderer {
  /** Events sent with the headers, before any text (`promptTokens`: of the first choice that started). */
  opening(promptTokens: number): StreamEvent[];
  text(choice: number, text: string, logprobs?: TokenLogprob[]): StreamEvent[];
  toolCall(choice: number, delta: ToolCallDelta, logprobs?: TokenLogprob[]): StreamEvent[];
  /** One choice ended. */
  choiceDone(choice: number, reason: FinishReason, answer: Answer): StreamEvent[];
  /** Every choice ended: usage, terminator. */
  closing(usage: Usage, answers: readonly Answer[]): StreamEvent[];
  /** A failure after the headers went out; the stream ends after these events. */
  streamError(err: ApiError): StreamEvent[];
  /** The non-streamed body. */
  full(answers: readonly Answer[], usage: Usage): object;
}
