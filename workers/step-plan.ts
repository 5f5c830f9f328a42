/**
 * What one decode step carries, decided as llama-server decides it: every generating sequence adds its
 * one sampled token, then sequences still evaluating their prompt fill the rest of the batch with
 * prompt chunks, in the order they arrived. No active sequence waits for a step of its own while
 * another decodes: a step with 8 tokens costs far less than 8 steps of one (docs/performance.md).
 */

/** A sequence as the planner sees it: how many tokens wait to be evaluated. */
export interface PlanInput {
  /** Tokens not yet in the KV cache: the rest of the prompt, or the one token just sampled. */
  pending: number;
}

export interface PlanItem {
  /** Index into the planner's input. */
  index: number;
  /** Tokens of that sequence in this step (from the front of its pending tokens). */
  count: number;
  /** Whether this step ends the sequence's pending tokens, so its last row needs logits. */
  logits: boolean;
}

/**
 * Plans one step over `inputs` (in arrival order) with room for `batchSize` tokens. Sequences with one
 * pending token (generating) come first; a prompt longer than the room left is split and continues in
 * the next step. Inputs with nothing pending are skipped.
 */
export function planStep(inputs: readonly PlanInput[], batchSize: number): PlanItem[] {
  const items: PlanItem[] = [];
  let room = batchSize;
  inputs.forEach((s, index) => {
    if (s.pending === 1 && room > 0) {
      items.push({ index, count: 1, logits: true });
      room--;
    }
  });
  inputs.forEach((s, index) => {
    if (s.pending > 1 && room > 0) {
      const count = Math.min(s.pending, room);
      items.push({ index, count, logits: count === s.pending });
      room -= count;
    }
  });
  return items;
}
