/**
 * The worker's decode loop: one llama_decode per step carrying every active sequence, in sequence-id order.
 *
 * node-llama-cpp's own loop (LlamaContextSequence.evaluate) put sequences into a batch in the order they
 * queued a token, and started the next decode as soon as any sequence had queued one. llama.cpp (one KV
 * stream per sequence) splits a batch wherever the next sequence id is not the previous one plus 1, and each
 * part is a full pass over the weights: its batches decoded like single sequences (docs/performance.md).
 * This loop owns the context instead: each step adds every generating sequence's sampled token and fills the
 * rest of the batch with prompt chunks (step-plan.ts), in ascending sequence id, decodes once, samples every
 * sequence that needs a token, and hands each token to its request synchronously, so all of them are back in
 * the very next step.
 *
 * It is also the only code that touches the KV cache, so editing a sequence's cache (prefix reuse, copies
 * from another sequence) happens between two steps, with no decode in flight and no lock.
 *
 * A failure costs only the requests it concerns: a cache edit for one request fails that request; a step
 * that cannot be assembled or decoded fails the requests in it (their caches are dropped); the loop goes on
 * for the others. Each failure is reported (`onFault`), and nothing the loop does can reject unhandled.
 */
import type { Token } from 'node-llama-cpp';
import type { NativeContext, NativeSampler } from './native.js';
import { commonPrefix, PrefixSharer, type SequenceState } from './prefix-share.js';
import { planStep } from './step-plan.js';

export type { SequenceState } from './prefix-share.js';

export interface LoopRequest {
  sequence: SequenceState;
  /** The whole prompt: the loop reuses the longest prefix already cached (at least one token is evaluated). */
  prompt: readonly Token[];
  /** Configured by the caller; the loop only samples with it. */
  sampler: NativeSampler;
  /**
   * Probabilities to sample with (logprobs): the sampled token's ('chosen'), or also the `top` most likely
   * candidates'. With the stock addon the latter costs a sort and a copy of the whole vocabulary per token
   * (`LoopOptions.topCandidates`).
   */
  probabilities?: 'chosen' | { top: number };
  /** Receives each sampled token between two steps; returns whether the request wants another. */
  onToken(token: Token, sampled: Sampled): boolean;
  /** Polled before every step; a cancelled request leaves the loop before the next decode. */
  cancelled(): boolean;
}

/** A sampled token, with the probabilities the request asked for. */
export interface Sampled {
  token: Token | -1;
  /**
   * [token, p, token, p, …], most likely first: the requested top k with the patched addon, every candidate
   * with the stock one.
   */
  candidates?: number[];
  /** The sampled token's probability. */
  probability?: number;
}

export interface LoopResult {
  /** Prompt tokens found in the sequence's cache, or copied from another's, and not evaluated again. */
  reusedTokens: number;
}

export interface LoopOptions {
  /** Most tokens in one decode step (the context's batch size). */
  batchSize: number;
  /** Tokens per sequence (the most a copied state can hold). */
  contextSize: number;
  /** Every sequence of the context: a new request may copy a cached prefix from any of them. */
  sequences: readonly SequenceState[];
  /** Tokens another sequence must hold beyond the request's own cached prefix to be copied. */
  minSharedPrefix: number;
  /** Called after every decode step (metrics). */
  onStep?: (stats: StepStats) => void;
  /** Called when a failure of the loop (not of one request's consumer) failed requests (metrics). */
  onFault?: (fault: LoopFault) => void;
  /**
   * The addon returns just the k most likely candidates when asked (patched at install, native.ts
   * `topLogprobsPath`). Without it every candidate comes back, sorted and copied: ~29 ms per token on the
   * full model, paid between two decode steps, so every sequence of the batch waits for it.
   */
  topCandidates?: boolean;
}

/**
 * A failure in the loop: `edit`, a cache edit while admitting one request; `step`, a step that could not be
 * assembled or decoded (every request in it failed); `loop`, anything else (every request in the loop failed).
 */
export interface LoopFault {
  kind: 'edit' | 'step' | 'loop';
  error: Error;
  /** Requests it failed. */
  failed: number;
}

/** What one step did, for metrics. */
export interface StepStats {
  /** Tokens decoded (sampled tokens fed back plus prompt tokens). */
  tokens: number;
  /** Sequences in the step. */
  sequences: number;
  /** Wall time of the step: batch assembly, llama_decode and sampling. */
  seconds: number;
}

interface Active {
  req: LoopRequest;
  /** Tokens not yet decoded: the rest of the prompt, or the one token just sampled. */
  pending: readonly Token[];
  reused: number;
  resolve(result: LoopResult): void;
  reject(err: unknown): void;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
const NO_LOGITS = new Uint32Array(0);
const LAST_ROW = (count: number) => Uint32Array.of(count - 1);

export class BatchLoop {
  private readonly incoming: Active[] = [];
  private readonly active: Active[] = [];
  private running = false;
  private steps = 0;
  private readonly sharer: PrefixSharer;
  /** Ids of sequences whose cache could not be emptied: what they hold is unknown until it is. */
  private readonly unknownCache = new Set<number>();

  constructor(
    private readonly native: NativeContext,
    private readonly opts: LoopOptions,
  ) {
    this.sharer = new PrefixSharer(native, opts.contextSize);
  }

  /** Generates for one request; resolves when it stops asking for tokens or is cancelled. */
  run(req: LoopRequest): Promise<LoopResult> {
    return new Promise((resolve, reject) => {
      this.incoming.push({ req, pending: [], reused: 0, resolve, reject });
      if (this.running) return;
      this.running = true;
      // Start on the next turn, so requests that arrive together share their first step. loop() ends the
      // requests a failure concerns itself; the handler is for a fault in that handling, so that no rejection
      // is left unhandled (it would end the worker and every request on it).
      setImmediate(() => {
        this.loop().catch((err: unknown) => this.fail([...this.active.splice(0), ...this.incoming.splice(0)], 'loop', err));
      });
    });
  }

  /** Decode steps since the loop was created (tests assert batch assembly with it). */
  get stepCount(): number {
    return this.steps;
  }

  /** Sequences in the loop now, admitted or about to be. */
  get size(): number {
    return this.active.length + this.incoming.length;
  }

  private async loop(): Promise<void> {
    try {
      // Requests can arrive while admit() awaits a prefix copy or a cancel check runs: the loop ends only
      // when none is active and none is waiting to be admitted (run() does not restart a running loop).
      while (this.active.length > 0 || this.incoming.length > 0) {
        await this.admit();
        for (const a of [...this.active]) this.checkCancelled(a);
        if (this.active.length > 0) await this.step();
      }
    } catch (err) {
      // A fault of the loop itself (admit and step handle their own): no state can be trusted, so every
      // request in the loop fails and every cache is dropped; a later request starts the loop again.
      const all = [...this.active, ...this.incoming.splice(0)];
      this.active.length = 0;
      for (const s of this.opts.sequences) this.dropCache(s);
      this.fail(all, 'loop', err);
    } finally {
      this.running = false;
    }
  }

  /** A request that was cancelled leaves before the next decode; a cancel check that throws fails it. */
  private checkCancelled(a: Active): void {
    let cancelled: boolean;
    try {
      cancelled = a.req.cancelled();
    } catch (err) {
      return this.finish(a, asError(err));
    }
    if (cancelled) this.finish(a);
  }

  /** Empties a sequence's cache; when llama.cpp refuses, the sequence is marked unknown (admit retries). */
  private dropCache(s: SequenceState): void {
    s.tokens.length = 0;
    try {
      this.native.removeTokenCellsFromSequence(s.id, 0, -1);
      this.unknownCache.delete(s.id);
    } catch {
      this.unknownCache.add(s.id);
    }
  }

  /** Fails `requests` for one fault and reports it. */
  private fail(requests: readonly Active[], kind: LoopFault['kind'], err: unknown): void {
    const error = asError(err);
    for (const a of requests) this.finish(a, error);
    try {
      this.opts.onFault?.({ kind, error, failed: requests.length });
    } catch {
      // A reporting hook must not take the loop down with it.
    }
  }

  /**
   * Moves new requests in (no decode is in flight): keeps the longest cached prefix of the prompt, copied
   * from another sequence when that one holds clearly more of it, and erases the rest.
   */
  private async admit(): Promise<void> {
    for (const a of this.incoming.splice(0)) {
      try {
        await this.prepareCache(a);
      } catch (err) {
        // The edit failed: this request fails, its sequence's cache is dropped, the others go on.
        this.dropCache(a.req.sequence);
        this.fail([a], 'edit', err);
        continue;
      }
      this.active.push(a);
    }
  }

  private async prepareCache(a: Active): Promise<void> {
    const { sequence, prompt } = a.req;
    if (this.unknownCache.has(sequence.id)) {
      this.native.removeTokenCellsFromSequence(sequence.id, 0, -1);
      this.unknownCache.delete(sequence.id);
    }
    const limit = prompt.length - 1; // at least one token is evaluated, for its logits
    let common = commonPrefix(sequence.tokens, prompt, limit);
    const donor = this.bestDonor(prompt, limit, sequence);
    if (donor && donor.common - common >= this.opts.minSharedPrefix) {
      try {
        await this.sharer.copy(donor.sequence, sequence, donor.common);
        common = donor.common;
      } catch {
        // Evaluate instead: with what the sequence still holds (nothing, if the copy had begun).
        common = commonPrefix(sequence.tokens, prompt, limit);
      }
    }
    if (common < sequence.tokens.length) {
      this.native.removeTokenCellsFromSequence(sequence.id, common, -1);
      sequence.tokens.length = common;
    }
    a.reused = common;
    a.pending = prompt.slice(common);
  }

  /** The other sequence holding the longest prefix of `prompt`, if any. */
  private bestDonor(prompt: readonly Token[], limit: number, self: SequenceState): { sequence: SequenceState; common: number } | undefined {
    let best: { sequence: SequenceState; common: number } | undefined;
    for (const s of this.opts.sequences) {
      if (s === self) continue;
      const common = commonPrefix(s.tokens, prompt, limit);
      if (common > (best?.common ?? 0)) best = { sequence: s, common };
    }
    return best;
  }

  private async step(): Promise<void> {
    const started = performance.now();
    const plan = planStep(
      this.active.map((a) => ({ pending: a.pending.length })),
      this.opts.batchSize,
    );
    // In ascending sequence order: llama.cpp splits a batch wherever the next sequence id is not the
    // previous one plus 1 (one KV stream per sequence), and every part is a full pass over the weights.
    const batch = plan.map((item) => ({ ...item, a: this.active[item.index]! })).sort((x, y) => x.a.req.sequence.id - y.a.req.sequence.id);
    const tokens = batch.reduce((n, item) => n + item.count, 0);
    const rows: { a: Active; row: number }[] = [];
    try {
      this.native.initBatch(tokens);
      for (const { a, count, logits } of batch) {
        const seq = a.req.sequence;
        const part = a.pending.slice(0, count);
        const added = this.native.addToBatch(seq.id, seq.tokens.length, Uint32Array.from(part), logits ? LAST_ROW(count) : NO_LOGITS);
        if (logits) rows.push({ a, row: added[0]! });
        seq.tokens.push(...part);
        a.pending = a.pending.slice(count);
      }
      this.steps++;
      await this.native.decodeBatch();
    } catch (err) {
      // The batch was not (or not wholly) decoded, and the cache of its sequences is unknown now: drop it,
      // fail their requests, keep serving the rest.
      for (const { a } of batch) this.dropCache(a.req.sequence);
      this.fail(
        batch.map(({ a }) => a),
        'step',
        err,
      );
      return;
    }
    const sampled = await Promise.all(rows.map(({ a, row }) => this.sample(a, row).catch((err: unknown) => asError(err))));
    this.opts.onStep?.({ tokens, sequences: batch.length, seconds: (performance.now() - started) / 1000 });
    rows.forEach(({ a }, i) => this.deliver(a, sampled[i]!));
  }

  private async sample(a: Active, row: number): Promise<Sampled> {
    const want = a.req.probabilities;
    if (!want) return { token: await this.native.sampleToken(row, a.req.sampler) };
    if (this.opts.topCandidates) {
      // Exactly k candidates and the sampled token's own probability (it may be outside the k).
      const k = want === 'chosen' ? 0 : want.top;
      const [token, candidates, probability] = await this.native.sampleToken(row, a.req.sampler, k > 0, true, k);
      return { token, candidates, probability };
    }
    const all = want !== 'chosen';
    const [token, candidates, probability] = await this.native.sampleToken(row, a.req.sampler, all, !all);
    return { token, candidates, probability };
  }

  private deliver(a: Active, sampled: Sampled | Error): void {
    if (sampled instanceof Error) return this.finish(a, sampled);
    const { token } = sampled;
    if (token === -1) return this.finish(a, new Error('Failed to sample the next token (no candidate left; a grammar may allow none)'));
    let more: boolean;
    try {
      more = a.req.onToken(token, sampled);
    } catch (err) {
      return this.finish(a, asError(err));
    }
    if (more) a.pending = [token];
    else this.finish(a);
  }

  private finish(a: Active, err?: Error): void {
    const i = this.active.indexOf(a);
    if (i >= 0) this.active.splice(i, 1);
    if (err === undefined) a.resolve({ reusedTokens: a.reused });
    else a.reject(err);
  }
}
