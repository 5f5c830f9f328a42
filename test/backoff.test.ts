/**
 * The engine process restart delays, with an injected clock: 0.5 s doubling to 30 s while a process keeps
 * failing, back to 0.5 s after one that ran a minute.
 */
import { describe, expect, it } from 'vitest';
import { FIRST_RESTART_MS, MAX_RESTART_MS, RestartBackoff, STABLE_MS } from '../src/engine/backoff.js';

describe('RestartBackoff', () => {
  it('doubles while the process keeps failing, up to the cap', () => {
    let now = 0;
    const b = new RestartBackoff(() => now);
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      b.up();
      now += 1000; // fails a second after it came up
      delays.push(b.exited());
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, MAX_RESTART_MS, MAX_RESTART_MS, MAX_RESTART_MS]);
  });

  it('starts over after a process that ran longer than a minute; a process that never came up does not count', () => {
    let now = 0;
    const b = new RestartBackoff(() => now);
    b.exited(); // never came up: 500
    expect(b.exited()).toBe(1000); // still failing, never up
    b.up();
    now += STABLE_MS; // exactly a minute is not more than a minute
    expect(b.exited()).toBe(2000);
    b.up();
    now += STABLE_MS + 1;
    expect(b.exited()).toBe(FIRST_RESTART_MS);
    expect(b.exited()).toBe(1000);
  });
});
