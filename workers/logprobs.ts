/**
 * OpenAI log-probability entries from what the native sampler returns: the sampled token's probability
 * alone when no alternatives are asked for (cheap), else also the most likely candidates, most likely first,
 * as [token, p, token, p, …]: exactly the `top` asked for with the addon patched at install, every candidate
 * with the stock addon (a sort and a copy of the vocabulary per token: about half the decode speed of the full
 * model on 2 cores, docs/performance.md). Either way the probabilities are normalized over every candidate:
 * those after temperature / top-k / top-p and the grammar (with the defaults temperature 1, top_p 1, and with
 * temperature 0, the model's own).
 */
import type { LlamaModel, Token } from 'node-llama-cpp';
import type { TokenLogprob } from '../src/shared/protocol.js';
import type { Sampled } from './batch-loop.js';
import { vocabularyText } from './native.js';
import { vocabularyBytes } from './token-bytes.js';

/** The smallest log probability reported (OpenAI's floor for tokens the sampler ruled out). */
const MIN_LOGPROB = -9999;

export class LogprobReader {
  private readonly vocabText: (token: Token) => string;
  private readonly cache = new Map<Token, { token: string; bytes: number[] }>();

  constructor(
    model: LlamaModel,
    private readonly top: number,
  ) {
    this.vocabText = vocabularyText(model);
  }

  /** What the sampler must return for these entries. */
  get needs(): 'chosen' | { top: number } {
    return this.top > 0 ? { top: this.top } : 'chosen';
  }

  /** The entry of a sampled token. */
  entry(token: Token, sampled: Sampled): TokenLogprob {
    const candidates = sampled.candidates ?? [];
    let p = sampled.probability ?? 0;
    for (let i = 0; sampled.probability === undefined && i < candidates.length; i += 2) {
      if (candidates[i] === token) {
        p = candidates[i + 1]!;
        break;
      }
    }
    const top: TokenLogprob['top'] = [];
    // Candidates at probability 0 (ruled out by a grammar or top-k / top-p) are not alternatives.
    for (let i = 0; i < candidates.length && top.length < this.top && candidates[i + 1]! > 0; i += 2) {
      top.push({ ...this.piece(candidates[i] as Token), logprob: logOf(candidates[i + 1]!) });
    }
    return { ...this.piece(token), logprob: logOf(p), top };
  }

  private piece(token: Token): { token: string; bytes: number[] } {
    let piece = this.cache.get(token);
    if (!piece) {
      const bytes = vocabularyBytes(this.vocabText(token));
      piece = { token: Buffer.from(bytes).toString('utf8'), bytes };
      this.cache.set(token, piece);
    }
    return piece;
  }
}

const logOf = (p: number) => (p > 0 ? Math.max(MIN_LOGPROB, Math.log(p)) : MIN_LOGPROB);
