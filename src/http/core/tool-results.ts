/**
 * The rule every API's history follows (chat tool messages, Responses function_call_output items,
 * Anthropic tool_result blocks): each result answers an earlier call, and each call gets a result.
 * The wording names each API's own fields.
 */
import { invalidValue } from './validation.js';

export interface ResultWording {
  /** The message for a result whose id no earlier call has. */
  unknown(id: string): string;
  /** The message for a call that got no result. */
  unanswered(id: string): string;
}

export class ToolCallLedger {
  /** Open calls: id → the request field of the call. */
  private readonly open = new Map<string, string>();

  constructor(private readonly wording: ResultWording) {}

  call(id: string, param: string): void {
    this.open.set(id, param);
  }

  /** A result for call `id`, found at `param`; a 400 when no earlier call is open with that id. */
  result(id: string, param: string): void {
    if (!this.open.delete(id)) throw invalidValue(param, this.wording.unknown(id));
  }

  /** The end of the history: a 400 naming the first call left without a result. */
  close(): void {
    for (const [id, param] of this.open) throw invalidValue(param, this.wording.unanswered(id));
  }
}
