/**
 * Drafts from a draft model (--speculative draft): a small model with the main model's vocabulary, loaded in the
 * same worker with a context of its own (the same sequence ids and context size, a small batch), proposes each
 * sequence's next tokens greedily. The batch loop verifies them as it verifies n-gram drafts, so what the draft
 * model says never changes an answer, only how many steps it takes.
 *
 * Its KV cache only serves drafting, and this class alone edits it. Before drafting, each sequence's draft cache is
 * reconciled with the request's history (prompt, accepted tokens, the pending sampled token) by common prefix: what
 * differs is removed (the last step's rejected drafts, an earlier request's tokens), what is missing is fed. That is
 * one or two tokens once a sequence is caught up (the pending token; after a fully accepted draft also the last
 * draft, which was sampled but never decoded), the whole prompt at first: in chunks bounded by the draft batch,
 * the short feeds first, and a sequence still catching up drafts nothing that step. Then the drafting sequences
 * decode together, one token each per round (llama.cpp splits a batch whose sequences carry different counts).
 *
 * A failure here never fails a request: the sequences it concerns draft nothing this step and their draft cache
 * is emptied (or, if even that fails, emptied before its next use).
 */
import type { Token } from 'node-llama-cpp';
import type { NativeContext, NativeSampler } from '../native.js';
import { commonPrefix } from '../prefix-share.js';

export interface DraftTarget {
  /** The main sequence's id: the draft context's sequence of the same id drafts for it. */
  id: number;
  /** Prompt, accepted tokens and the pending sampled token: the draft continues after the last. */
  history: readonly Token[];
  /** Most tokens to draft (0: none, and no catch-up either). */
  max: number;
}

export interface DraftModelOptions {
  /** Most tokens in one draft decode (the draft context's batch size). */
  batchSize: number;
  /** Sizes of the two vocabularies: a token outside the draft's cannot be fed to it, one outside the main's cannot be verified. */
  draftVocabulary: number;
  mainVocabulary: number;
  /** A draft round's cost in main steps of as many tokens, until rounds are measured (the models' size ratio). */
  relativeCost: number;
}

/** One sequence's tokens in one draft decode; `sample`: its last row gets logits and is sampled. */
interface Part {
  id: number;
  tokens: readonly Token[];
  sample: boolean;
}

const NO_LOGITS = new Uint32Array(0);
/** Tokens per sequence of a round once caught up (the pending token, and the last draft if all were confirmed). */
const ROUND_TOKENS = 2;
/**
 * How the learned round costs move: each round weighs 0.2, and counts as at most twice the estimate (a round the
 * scheduler interrupted on a busy machine takes 10× its time); each step that does not draft takes 3 % off them, so
 * a cost that stopped drafting is measured again after a few dozen steps.
 */
const ROUND_WEIGHT = 0.2;
const ROUND_OUTLIER = 2;
const IDLE_DECAY = 0.97;

export class DraftModel {
  /** What each draft sequence's cache holds, from position 0; undefined: unknown (a failed edit), emptied before use. */
  private readonly held: (Token[] | undefined)[];
  /** Seconds of one round (decode and greedy samples) by the sequences in it, learned from the rounds drafted. */
  private readonly roundSeconds = new Map<number, number>();

  /** @param samplers one greedy sampler per sequence: the samples of a round run in parallel, and a sampler holds buffers */
  constructor(
    private readonly native: NativeContext,
    private readonly samplers: readonly NativeSampler[],
    private readonly o: DraftModelOptions,
  ) {
    // Unknown until first used: the context may hold an earlier drafter's cells.
    this.held = samplers.map(() => undefined);
  }

  /**
   * Seconds one round costs for `sequences` sequences: measured, else the main step of as many tokens
   * (`mainStep`) scaled by the size ratio. K draft tokens take K rounds (the last draft is sampled, not decoded).
   */
  roundCost(sequences: number, mainStep: (tokens: number) => number): number {
    return this.roundSeconds.get(sequences) ?? this.o.relativeCost * mainStep(sequences);
  }

  /** Up to `k` (and each target's `max`) greedy draft tokens for each target, in the targets' order. */
  async draft(targets: readonly DraftTarget[], k: number): Promise<Token[][]> {
    try {
      return await this.rounds(targets, k);
    } catch {
      // Not a native failure (each is handled where it happens): what the caches hold is not known now.
      for (const t of targets) this.held[t.id] = undefined;
      return targets.map(() => []);
    }
  }

  private async rounds(targets: readonly DraftTarget[], k: number): Promise<Token[][]> {
    const drafts = targets.map((): Token[] => []);
    const byId = new Map(targets.map((t, i) => [t.id, i]));
    const want = (id: number) => Math.min(k, targets[byId.get(id)!]!.max);
    let parts = this.catchUp(targets.filter((t) => want(t.id) > 0));
    while (parts.length > 0) {
      const sampled = await this.round(parts);
      const next: Part[] = [];
      parts.forEach((p, i) => {
        const token = sampled?.[i];
        if (token === undefined) return;
        const draft = drafts[byId.get(p.id)!]!;
        draft.push(token);
        // The last draft token is only sampled: the next step decodes it, if it is confirmed, or drops it.
        if (draft.length < want(p.id)) next.push({ id: p.id, tokens: [token], sample: true });
      });
      if (sampled === undefined) {
        for (const p of parts) drafts[byId.get(p.id)!]!.length = 0;
      }
      parts = next;
    }
    return drafts;
  }

  /**
   * The first round: each target's missing tokens, in ascending sequence order. Sequences one or two tokens behind
   * all feed as many (one cached token fed again costs a row; feeds of different lengths cost a pass each). The short
   * feeds get the room first, so a long catch-up does not keep them from drafting.
   */
  private catchUp(targets: readonly DraftTarget[]): Part[] {
    const behind = targets.map((t) => {
      const held = this.held[t.id];
      // The last history token is always fed: its logits give the first draft token.
      return held === undefined ? t.history.length : t.history.length - commonPrefix(held, t.history, t.history.length - 1);
    });
    const even = Math.max(0, ...behind.filter((n) => n <= ROUND_TOKENS));
    const feeds = targets.flatMap((t, i) => {
      const feed = behind[i]! <= ROUND_TOKENS ? Math.min(even, t.history.length) : behind[i]!;
      const missing = this.keep(t, t.history.length - feed);
      return missing === undefined ? [] : [{ id: t.id, missing }];
    });
    let room = this.o.batchSize;
    const parts: Part[] = [];
    for (const { id, missing } of feeds.sort((a, b) => a.missing.length - b.missing.length)) {
      const take = Math.min(missing.length, room);
      if (take === 0) break;
      room -= take;
      parts.push({ id, tokens: missing.slice(0, take), sample: take === missing.length });
    }
    return parts.sort((a, b) => a.id - b.id);
  }

  /**
   * Cuts a target's draft cache to the first `keep` tokens of its history (which it holds) and returns the rest of
   * the history, to feed; undefined: nothing this step (an edit failed, or a token the draft model does not have).
   */
  private keep(t: DraftTarget, keep: number): Token[] | undefined {
    try {
      let held = this.held[t.id];
      if (held === undefined) {
        if (!this.native.removeTokenCellsFromSequence(t.id, 0, -1)) return undefined;
        held = this.held[t.id] = [];
      }
      if (keep < held.length) {
        if (!this.native.removeTokenCellsFromSequence(t.id, keep, -1)) throw new Error('the draft cache refused an edit');
        held.length = keep;
      }
      const missing = t.history.slice(keep);
      return missing.every((token) => token < this.o.draftVocabulary) ? missing : undefined;
    } catch {
      this.held[t.id] = undefined;
      return undefined;
    }
  }

  /**
   * Decodes `parts` (ascending ids) in one batch and samples greedily each part that asks for it: the sampled tokens
   * by part (undefined: not sampled, or a token the main model cannot verify). Undefined when the decode failed: the
   * parts' caches are emptied.
   */
  private async round(parts: readonly Part[]): Promise<(Token | undefined)[] | undefined> {
    const started = performance.now();
    const rows: (number | undefined)[] = [];
    try {
      this.native.initBatch(parts.reduce((n, p) => n + p.tokens.length, 0));
      for (const p of parts) {
        const held = this.held[p.id]!;
        const logits = p.sample ? Uint32Array.of(p.tokens.length - 1) : NO_LOGITS;
        rows.push(this.native.addToBatch(p.id, held.length, Uint32Array.from(p.tokens), logits)[0]);
        held.push(...p.tokens);
      }
      await this.native.decodeBatch();
    } catch {
      for (const p of parts) this.reset(p.id);
      return undefined;
    }
    const sampled = await Promise.all(
      parts.map(async (p, i) => {
        const row = rows[i];
        if (!p.sample || row === undefined) return undefined;
        // A failed sample leaves the cache as it was: this sequence only stops drafting.
        const token = await this.native.sampleToken(row, this.samplers[p.id]!).catch(() => -1 as const);
        return token !== -1 && token < this.o.mainVocabulary ? token : undefined;
      }),
    );
    // A round that did not draft (a catch-up, a failed sample) says little about what drafting costs.
    if (parts.every((p, i) => p.tokens.length <= ROUND_TOKENS && sampled[i] !== undefined)) {
      this.observe(parts.length, (performance.now() - started) / 1000);
    }
    return sampled;
  }

  /** A step that drafted nothing: what drafting costs is taken as a little cheaper (see IDLE_DECAY). */
  idle(): void {
    for (const [sequences, seconds] of this.roundSeconds) this.roundSeconds.set(sequences, seconds * IDLE_DECAY);
  }

  private observe(sequences: number, seconds: number): void {
    const was = this.roundSeconds.get(sequences);
    this.roundSeconds.set(sequences, was === undefined ? seconds : was + ROUND_WEIGHT * (Math.min(seconds, ROUND_OUTLIER * was) - was));
  }

  /** Empties a draft sequence's cache; if llama.cpp refuses, it is marked unknown and emptied before its next use. */
  private reset(id: number): void {
    try {
      this.held[id] = this.native.removeTokenCellsFromSequence(id, 0, -1) ? [] : undefined;
    } catch {
      this.held[id] = undefined;
    }
  }
}
