import type { FinishReason, TokenLogprob, ToolCallDelta } from '../../shared/protocol.js';

/** One choice's whole answer, gathered as it streams. */
export class Answer {
  text = '';
  finishReason: FinishReason = 'length';
  /** The stop string that ended the answer, if one did. */
  stopSequence: string | undefined;
  readonly toolCalls: { name: string; arguments: string }[] = [];
  /** undefined when the request did not ask for logprobs. */
  logprobs: TokenLogprob[] | undefined;
  /** The input's embedding (embedding requests). */
  embedding: number[] | undefined;

  addText(text: string, logprobs?: TokenLogprob[]): void {
    this.text += text;
    this.addLogprobs(logprobs);
  }

  addToolCall(delta: ToolCallDelta, logprobs?: TokenLogprob[]): void {
    const call = (this.toolCalls[delta.index] ??= { name: '', arguments: '' });
    if (delta.name !== undefined) call.name = delta.name;
    call.arguments += delta.arguments;
    this.addLogprobs(logprobs);
  }

  private addLogprobs(logprobs: TokenLogprob[] | undefined): void {
    if (logprobs) (this.logprobs ??= []).push(...logprobs);
  }
}
