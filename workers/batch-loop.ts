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
 * from another sequence, rejected drafts) happens between two steps, with no decode in flight and no lock.
 *
 * Speculation (LoopOptions.speculation): a generating sequence may add, after its sampled token, K drafted tokens
 * (n-gram lookup over its prompt and answer, speculation/ngram-index.ts), all with logits, in the same step. Its
 * rows are then sampled in order, each token handed to the request before the next row is sampled, until a token
 * differs from the draft: the sampler (RNG, penalties, grammar) is called exactly as without drafts, on the same
 * logits, so the answer is the same token for token (seeded sampling included). The rejected positions leave the
 * KV cache before the step ends, so at every step boundary a sequence's cache holds exactly its `tokens`.
 * With a draft model (speculation/draft-model.ts) only the drafts' source changes: K is chosen first, counting the
 * draft model's passes, and it drafts K tokens greedily for every generating sequence.
 *
 * A failure costs only the requests it concerns: a cache edit for one request fails that request; a step
 * that cannot be assembled or decoded fails the requests in it (their caches are dropped); the loop goes on
 * for the others. Each failure is reported (`onFault`), and nothing the loop does can reject unhandled.
 */
import type { Token } from 'node-llama-cpp';
import type { NativeContext, NativeSampler } from './native.js';
import { commonPrefix, PrefixSharer, type SequenceState } from './prefix-share.js';
import type { DraftPolicy } from '../src/shared/protocol.js';
import { Acceptance, chooseDraftLength, CPU_STEP_COST, longestDraft, StepCosts } from './speculation/draft-length.js';
import type { DraftModel } from './speculation/draft-model.js';
import { NgramIndex } from './speculation/ngram-index.js';
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
  /**
   * Present when the request may speculate: how many tokens it can still take after the one it is about to be
   * handed (its max_tokens left), so no draft goes past what it would accept.
   */
  draftRoom?: () => number;
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
  /** Speculative decoding (--speculative ngram or draft); absent: one token per sequence per step. */
  speculation?: SpeculationOptions;
  /**
   * The addon returns just the k most likely candidates when asked (patched at install, native.ts
   * `topLogprobsPath`). Without it every candidate comes back, sorted and copied: ~29 ms per token on the
   * full model, paid between two decode steps, so every sequence of the batch waits for it.
   */
  topCandidates?: boolean;
}

interface SpeculationOptions {
  /** Fewest and most draft tokens a sequence verifies in one step (--draft-min, --draft-max). */
  draftMin: number;
  draftMax: number;
  /** --draft-policy: 'always' skips the cost model and verifies every draft on offer (up to draftMax). */
  policy: DraftPolicy;
  /** N-gram orders looked up, longest first (--ngram-max down to --ngram-min). */
  ngramMin: number;
  ngramMax: number;
  /** Drafts come from this model instead of the n-gram lookup (--speculative draft). */
  draftModel?: DraftModel;
}

/**
 * A new sequence's acceptance before its first verification (optimistic: an n-gram that matched is often right, and
 * a sequence is only measured once it drafts), and a filler position's.
 */
const PRIOR_ACCEPTANCE = 0.85;
const FILLER_ACCEPTANCE = 0.05;
/**
 * The most a lookup draft's acceptance is believed, by how many tokens its match repeats: in free text a 2-3 token
 * match is often a coincidence (measured: 30 % of such drafts confirmed at temperature 1), so only a longer one —
 * a passage being quoted, an answer repeating itself — is worth a step that verifies it.
 */
function matchConfidence(matched: number): number {
  if (matched >= 16) return 1;
  if (matched >= 8) return 0.85;
  if (matched >= 4) return 0.6;
  return 0.35;
}

/** Drafting must promise this much more speed than plain decoding (its estimates are noisy). */
const DRAFT_MARGIN = 0.1;

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
  /** Sequences that verified a draft, the draft tokens decoded for it, and those their samples confirmed. */
  drafts: number;
  drafted: number;
  accepted: number;
}

/**
 * Prompt tokens a speculating sequence indexes per step: ~8 ms (about 2 µs a token), so a 32k-token prompt, ~60 ms
 * to index at once, never stalls the loop's other sequences for longer than that.
 */
const INDEX_PER_STEP = 4096;

/**
 * A speculating sequence's lookup state. Its history is indexed INDEX_PER_STEP tokens at a time from `backlog` (the
 * prompt at first, then what was generated meanwhile); it drafts only once the backlog is empty.
 */
interface Drafting {
  index: NgramIndex;
  acceptance: Acceptance;
  backlog: Token[];
}

interface Active {
  req: LoopRequest;
  /** Tokens not yet decoded: the rest of the prompt, or the one token just sampled. */
  pending: readonly Token[];
  /** Its pending token is a sampled one (the prompt is evaluated). */
  generating: boolean;
  /** Speculation: the n-gram index of its prompt and answer, and how well its drafts did lately. */
  drafting?: Drafting;
  reused: number;
  resolve(result: LoopResult): void;
  reject(err: unknown): void;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
const NO_LOGITS = new Uint32Array(0);
const LAST_ROW = (count: number) => Uint32Array.of(count - 1);
const ALL_ROWS = (count: number) => Uint32Array.from({ length: count }, (_, i) => i);

/** The tokens a sequence verifies after its sampled one; `real` of them came from its lookup, the rest is filler. */
interface Draft {
  tokens: readonly Token[];
  real: number;
}
const NO_DRAFT: Draft = { tokens: [], real: 0 };

/** The rows of a part that get logits: none (a prompt chunk that goes on), the last, or every one (a draft). */
function rowsWithLogits(logits: boolean, count: number, draft: readonly Token[]): Uint32Array {
  if (!logits) return NO_LOGITS;
  return draft.length > 0 ? ALL_ROWS(count) : LAST_ROW(count);
}

/** One sequence's part of a step whose tokens have logits: the rows to sample, and the draft they verify. */
interface Verify {
  a: Active;
  rows: Uint32Array;
  /** The drafted tokens after its sampled one ([] for a plain row); `real` of them came from its lookup. */
  draft: readonly Token[];
  real: number;
  /** Position of the first token of this part. */
  base: number;
}

export class BatchLoop {
  private readonly incoming: Active[] = [];
  private readonly active: Active[] = [];
  private running = false;
  private steps = 0;
  private readonly sharer: PrefixSharer;
  /** Ids of sequences whose cache could not be emptied: what they hold is unknown until it is. */
  private readonly unknownCache = new Set<number>();
  /** Decode time by step size, learned from plain and drafting steps (speculation only). */
  private readonly costs = new StepCosts(CPU_STEP_COST);

  constructor(
    private readonly native: NativeContext,
    private readonly opts: LoopOptions,
  ) {
    this.sharer = new PrefixSharer(native, opts.contextSize);
  }

  /** Generates for one request; resolves when it stops asking for tokens or is cancelled. */
  run(req: LoopRequest): Promise<LoopResult> {
    return new Promise((resolve, reject) => {
      this.incoming.push({ req, pending: [], generating: false, reused: 0, resolve, reject });
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
    const spec = this.opts.speculation;
    if (spec && a.req.draftRoom) {
      // The whole prompt is looked up, the reused prefix too: indexed over the next steps (Drafting). A draft model
      // reads only the history, so nothing is hashed for it.
      const index = spec.draftModel ? NgramIndex.historyOnly() : new NgramIndex(spec.ngramMin, spec.ngramMax);
      a.drafting = { index, acceptance: new Acceptance(PRIOR_ACCEPTANCE), backlog: [...prompt] };
    }
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
    this.indexBacklogs();
    const drafts = await this.drafts();
    const k = drafts?.[0]?.tokens.length ?? 0;
    const plan = planStep(
      this.active.map((a) => ({ pending: a.pending.length + (a.generating ? k : 0) })),
      this.opts.batchSize,
    );
    // In ascending sequence order: llama.cpp splits a batch wherever the next sequence id is not the
    // previous one plus 1 (one KV stream per sequence), and every part is a full pass over the weights.
    const batch = plan.map((item) => ({ ...item, a: this.active[item.index]! })).sort((x, y) => x.a.req.sequence.id - y.a.req.sequence.id);
    const tokens = batch.reduce((n, item) => n + item.count, 0);
    const verifies: Verify[] = [];
    let decodeSeconds: number;
    try {
      this.native.initBatch(tokens);
      for (const { a, index, count, logits } of batch) {
        const seq = a.req.sequence;
        const { tokens: draft, real } = (a.generating && drafts?.[index]) || NO_DRAFT;
        const part = [...a.pending.slice(0, count - draft.length), ...draft];
        const rows = this.native.addToBatch(seq.id, seq.tokens.length, Uint32Array.from(part), rowsWithLogits(logits, part.length, draft));
        if (logits) verifies.push({ a, rows, draft, real, base: seq.tokens.length });
        seq.tokens.push(...part);
        a.pending = a.pending.slice(count - draft.length);
      }
      this.steps++;
      const decoding = performance.now();
      await this.native.decodeBatch();
      decodeSeconds = (performance.now() - decoding) / 1000;
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
    if (this.opts.speculation && batch.every(({ a }) => a.generating)) {
      this.costs.observe(tokens, decodeSeconds);
      if (k === 0) this.costs.idle(tokens);
    }
    const confirmed = await Promise.all(verifies.map((v) => this.verify(v)));
    // Every sample of the step is taken: now the rejected drafts leave the caches (no native call in flight).
    verifies.forEach((v, i) => this.dropRejected(v, confirmed[i]!));
    this.opts.onStep?.({
      tokens,
      sequences: batch.length,
      seconds: (performance.now() - started) / 1000,
      drafts: verifies.filter((v) => v.draft.length > 0).length,
      drafted: verifies.reduce((n, v) => n + v.draft.length, 0),
      accepted: confirmed.reduce((n, c) => n + c, 0),
    });
  }

  /** Indexes up to INDEX_PER_STEP tokens of each speculating sequence's backlog. */
  private indexBacklogs(): void {
    for (const a of this.active) {
      const d = a.drafting;
      if (d && d.backlog.length > 0) d.index.pushAll(d.backlog.splice(0, INDEX_PER_STEP));
    }
  }

  /**
   * The drafts of this step, by index into `active` (all of one length K, see draft-length.ts), or undefined when
   * it drafts nothing: speculation is off, a prompt is being evaluated (its chunks fill the step), a generating
   * request may not draft, or no K promises more tokens per second than plain decoding.
   */
  private async drafts(): Promise<Draft[] | undefined> {
    const spec = this.opts.speculation;
    if (!spec || this.active.some((a) => !a.generating || !a.drafting)) return undefined;
    const contextRoom = Math.min(...this.active.map((a) => this.opts.contextSize - a.req.sequence.tokens.length - 1));
    // A sequence whose history is not indexed yet drafts nothing (its lookup and its draft model's history lag).
    const rooms = this.active.map((a) =>
      a.drafting!.backlog.length > 0 ? 0 : Math.min(spec.draftMax, a.req.draftRoom?.() ?? 0, contextRoom),
    );
    const chosen = spec.draftModel ? await this.modelDrafts(spec.draftModel, rooms) : this.lookupDrafts(rooms);
    if (chosen === undefined) return undefined;
    const { k, own } = chosen;
    // Padded to K with the sequence's own sampled token: exact like any draft, and cheaper than an extra pass.
    return own.map((d, i) => ({
      tokens: [...d.slice(0, k), ...Array<Token>(Math.max(0, k - d.length)).fill(this.active[i]!.pending[0]!)],
      real: Math.min(d.length, k),
    }));
  }

  /** N-gram drafts: a lookup is free, so K comes from what each sequence's lookup found. */
  private lookupDrafts(rooms: readonly number[]): { k: number; own: Token[][] } | undefined {
    const own = this.active.map((a, i) => a.drafting!.index.draft(rooms[i]!));
    const k = this.draftLength(
      own.map((d) => d.length),
      undefined,
      this.active.map((a) => matchConfidence(a.drafting!.index.lastMatch)),
    );
    if (k > 0) return { k, own };
    this.idle(own.map((d) => d.length));
    return undefined;
  }

  /**
   * A draft model's drafts: it would draft for every sequence, up to its room, but its passes cost, so K is decided
   * first with their price in the step's, and only then does it draft.
   */
  private async modelDrafts(model: DraftModel, rooms: readonly number[]): Promise<{ k: number; own: Token[][] } | undefined> {
    const k = this.draftLength(rooms, (n) => n * model.roundCost(this.active.length, (tokens) => this.costs.cost(tokens)));
    if (k <= 0) {
      this.idle(rooms);
      model.idle();
      return undefined;
    }
    const own = await model.draft(
      this.active.map((a, i) => ({ id: a.req.sequence.id, history: a.drafting!.index.tokens, max: rooms[i]! })),
      k,
    );
    // The drafting is paid for; a sequence still catching up offered nothing: K again, from what was drafted.
    const drafted = Math.min(k, this.draftLength(own.map((d) => d.length)));
    return drafted > 0 ? { k: drafted, own } : undefined;
  }

  /** A step without drafts: the sequences that had some on offer drift back to their prior acceptance. */
  private idle(offered: readonly number[]): void {
    offered.forEach((n, i) => n > 0 && this.active[i]!.drafting!.acceptance.idle());
  }

  /**
   * K for draft offers of these lengths (0: plain decoding). It is at most the longest offer, and every offer is
   * within its sequence's room (drafts() caps them by the context left), so K fits every sequence's context.
   */
  private draftLength(offered: readonly number[], draftCost?: (k: number) => number, caps?: readonly number[]): number {
    const spec = this.opts.speculation!;
    const o = {
      draftMin: spec.draftMin,
      draftMax: spec.draftMax,
      batchSize: this.opts.batchSize,
      fillerAlpha: FILLER_ACCEPTANCE,
      margin: DRAFT_MARGIN,
    };
    if (spec.policy === 'always') return longestDraft(offered, o);
    return chooseDraftLength(
      offered.map((n, i) => ({ offered: n, alpha: Math.min(this.active[i]!.drafting!.acceptance.alpha, caps?.[i] ?? 1) })),
      (n) => this.costs.cost(n),
      o,
      draftCost,
    );
  }

  /**
   * Samples one sequence's rows in order, handing each token to its request, until a token differs from the
   * draft, the request stops, or the rows run out; returns how many drafted tokens were confirmed. It never samples
   * past that row, so the sampler (RNG, grammar, penalties) stands exactly where plain decoding leaves it.
   */
  private async verify(v: Verify): Promise<number> {
    const { a, rows, draft } = v;
    for (let i = 0; i < rows.length; i++) {
      const sampled = await this.sample(a, rows[i]!).catch((err: unknown) => asError(err));
      const token = this.deliver(a, sampled);
      if (token === undefined) return i;
      // deliver() made the token the sequence's pending one: the next step decodes it.
      if (i === draft.length || token !== draft[i]) {
        this.learn(v, i);
        return i;
      }
    }
    // The last row is sampled with i === draft.length, which always returns above.
    throw new Error('a verification ran past its last row');
  }

  private learn(v: Verify, confirmed: number): void {
    if (v.real > 0) v.a.drafting?.acceptance.update(v.real, Math.min(confirmed, v.real));
  }

  /** The cells after the sampled token and the confirmed drafts go; a failed removal fails the request alone. */
  private dropRejected(v: Verify, confirmed: number): void {
    const seq = v.a.req.sequence;
    const keep = v.base + 1 + confirmed;
    if (v.draft.length === 0 || seq.tokens.length <= keep) return;
    let removed = false;
    try {
      removed = this.native.removeTokenCellsFromSequence(seq.id, keep, -1);
    } catch {
      // Handled as a refusal, below.
    }
    if (removed) {
      seq.tokens.length = keep;
      return;
    }
    this.dropCache(seq);
    if (this.active.includes(v.a)) this.fail([v.a], 'edit', new Error(`could not remove the rejected draft of sequence ${seq.id}`));
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

  /** Hands a sampled token to its request; returns it when the request wants another, else ends the request. */
  private deliver(a: Active, sampled: Sampled | Error): Token | undefined {
    const ended = (err?: Error) => {
      this.finish(a, err);
      return undefined;
    };
    if (sampled instanceof Error) return ended(sampled);
    const { token } = sampled;
    if (token === -1) return ended(new Error('Failed to sample the next token (no candidate left; a grammar may allow none)'));
    let more: boolean;
    try {
      more = a.req.onToken(token, sampled);
    } catch (err) {
      return ended(asError(err));
    }
    if (!more) return ended();
    a.pending = [token];
    a.generating = true;
    const d = a.drafting;
    if (d) {
      // After the backlog, in order: the index's history is the sequence's.
      if (d.backlog.length > 0) d.backlog.push(token);
      else d.index.push(token);
    }
    return token;
  }

  private finish(a: Active, err?: Error): void {
    const i = this.active.indexOf(a);
    if (i >= 0) this.active.splice(i, 1);
    if (err === undefined) a.resolve({ reusedTokens: a.reused });
    else a.reject(err);
  }
}
