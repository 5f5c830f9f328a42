/**
 * How many draft tokens the generating sequences of one step verify. llama.cpp (one KV stream per sequence) takes
 * the same number of tokens from every sequence in each pass over the weights, so a step whose sequences carry
 * different counts costs extra passes: every generating sequence verifies the same K, and one whose own draft is
 * shorter is padded (filler rarely accepted, but cheaper than the pass it saves). K is the length that maximizes the
 * expected tokens per second: the expected accepted run of each sequence (its recent acceptance per draft token,
 * a geometric model) over the decode time of a step of that size, learned from this worker's own steps, plus the
 * draft model's K passes when it drafts. A full batch (where a step's cost grows with its tokens), poor acceptance or
 * drafting that costs what it saves gives K = 0: plain decoding.
 */

/**
 * A sequence's recent acceptance: the chance that each next draft token is confirmed (decaying counts). While the
 * sequence does not draft, it drifts back to the prior, so one bad draft does not stop it drafting for good: after
 * a few dozen steps it is tried again.
 */
export class Acceptance {
  private accepted: number;
  private rejected: number;

  constructor(
    private readonly prior: number,
    private readonly decay = 0.7,
    private readonly drift = 0.02,
  ) {
    this.accepted = prior;
    this.rejected = 1 - prior;
  }

  /** One verification: the first `accepted` of `offered` real draft tokens were confirmed. */
  update(offered: number, accepted: number): void {
    if (offered === 0) return;
    this.accepted = this.accepted * this.decay + accepted;
    this.rejected = this.rejected * this.decay + (accepted < offered ? 1 : 0);
  }

  /** A step in which the sequence had a draft but did not verify it. */
  idle(): void {
    this.accepted += this.drift * (this.prior * (this.accepted + this.rejected) - this.accepted);
    this.rejected += this.drift * ((1 - this.prior) * (this.accepted + this.rejected) - this.rejected);
  }

  get alpha(): number {
    return this.accepted / (this.accepted + this.rejected);
  }
}

/**
 * Seconds of one decode step by its tokens (every row with logits), learned per size from the steps this worker
 * decoded with generating sequences only. A size not seen yet is priced by `relative` from the nearest smaller size
 * seen (the smallest seen, if none is smaller): a worker that always serves several sequences never sees a step of
 * one.
 *
 * A size is only measured when a step of that size is decoded, and a size that looks too dear is never chosen: one
 * slow step (the scheduler, another process) would stop drafting at that concurrency for good. So a step counts as
 * at most `outlier` times what was expected of it, and every plain step moves the sizes above it `drift` of the way
 * back down towards what `relative` says of them from the plain size's cost: an over-priced size is tried again
 * after a few dozen steps, and if it really is that dear, measuring it puts its price back.
 */
export class StepCosts {
  private readonly learned = new Map<number, number>();

  /** @param relative the cost of a step of n tokens in steps of one, until n is measured */
  constructor(
    private readonly relative: (tokens: number) => number,
    private readonly weight = 0.2,
    private readonly outlier = 2,
    private readonly drift = 0.03,
  ) {}

  observe(tokens: number, seconds: number): void {
    const expected = this.learned.size > 0 ? this.cost(tokens) : Infinity;
    const was = this.learned.get(tokens);
    const counted = Math.min(seconds, this.outlier * expected);
    this.learned.set(tokens, was === undefined ? counted : was + this.weight * (counted - was));
  }

  /** A step of `tokens` that verified no drafts (after observe): the larger sizes drift towards its price. */
  idle(tokens: number): void {
    const plain = this.learned.get(tokens);
    if (plain === undefined) return;
    for (const [size, seconds] of this.learned) {
      if (size <= tokens) continue;
      const prior = (plain * this.relative(size)) / this.relative(tokens);
      if (seconds > prior) this.learned.set(size, seconds - this.drift * (seconds - prior));
    }
  }

  cost(tokens: number): number {
    const seen = this.learned.get(tokens);
    if (seen !== undefined) return seen;
    const sizes = [...this.learned.keys()];
    if (sizes.length === 0) return this.relative(tokens);
    const below = sizes.filter((size) => size < tokens);
    const from = below.length > 0 ? Math.max(...below) : Math.min(...sizes);
    return (this.learned.get(from)! * this.relative(tokens)) / this.relative(from);
  }
}

/**
 * The cost of a step of n tokens in steps of one before it is measured, and how a measured size is extrapolated to a
 * larger one: what this 2-core CPU shows for the full-size model with logits on every row (one sequence: 2 tokens
 * 2.5×, 3 2.9×, 5 3.9×, 9 4.3×, 17 5.9× a step of 1; 8 sequences: 16 tokens 1.36×, 24 2.0×, 40 3.2× a step of 8;
 * docs/speculative.md). The first extra token costs most (matrix-vector becomes matrix-matrix), later ones little.
 */
export const CPU_STEP_COST = (tokens: number): number => (tokens <= 1 ? 1 : 2.2 + 0.22 * (tokens - 2));

export interface DraftOffer {
  /** Real draft tokens on offer (n-gram lookup); beyond them a verified position is filler. */
  offered: number;
  /** Recent acceptance per draft token. */
  alpha: number;
}

export interface DraftLengthOptions {
  draftMin: number;
  draftMax: number;
  /** Most tokens in one step. */
  batchSize: number;
  /** Acceptance of a filler position. */
  fillerAlpha: number;
  /** How much better K must be than no drafting: speculation must pay for the noise in its own estimates. */
  margin: number;
}

/** Expected tokens one sequence yields from a step that verifies k positions (its sampled token included). */
function expectedTokens(s: DraftOffer, k: number, fillerAlpha: number): number {
  let expected = 1;
  let p = 1;
  for (let i = 0; i < k; i++) {
    p *= i < s.offered ? s.alpha : fillerAlpha;
    expected += p;
  }
  return expected;
}

/**
 * --draft-policy always: the longest draft on offer, within --draft-max and the batch (0 when it is shorter than
 * --draft-min). No cost model: for hardware where verifying is nearly free, and for tests that must draft.
 */
export function longestDraft(offered: readonly number[], o: DraftLengthOptions): number {
  const k = Math.min(o.draftMax, Math.max(0, ...offered), Math.floor(o.batchSize / Math.max(1, offered.length)) - 1);
  return k >= o.draftMin ? k : 0;
}

/**
 * The draft length of a step with these generating sequences (0: no drafting). `draftCost`: seconds it takes to
 * draft k tokens for each of them before the step (a draft model's passes); a lookup costs nothing.
 */
export function chooseDraftLength(
  seqs: readonly DraftOffer[],
  cost: (tokens: number) => number,
  o: DraftLengthOptions,
  draftCost: (k: number) => number = () => 0,
): number {
  const n = seqs.length;
  if (n === 0 || !seqs.some((s) => s.offered > 0)) return 0;
  const longest = Math.min(o.draftMax, Math.max(...seqs.map((s) => s.offered)));
  let best = 0;
  let bestRate = (n / cost(n)) * (1 + o.margin);
  for (let k = o.draftMin; k <= longest && n * (k + 1) <= o.batchSize; k++) {
    const rate = seqs.reduce((sum, s) => sum + expectedTokens(s, k, o.fillerAlpha), 0) / (cost(n * (k + 1)) + draftCost(k));
    if (rate > bestRate) {
      best = k;
      bestRate = rate;
    }
  }
  return best;
}
