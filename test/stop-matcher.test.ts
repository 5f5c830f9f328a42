import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../workers/stop-matcher.js';

function run(stops: string[], pieces: string[]) {
  const m = new StopMatcher(stops);
  let out = '';
  for (const p of pieces) {
    const r = m.push(p);
    out += r.emit;
    if (r.stopped) return { out, stopped: true };
  }
  return { out: out + m.flush(), stopped: false };
}

describe('StopMatcher', () => {
  it('passes text through without stops', () => {
    expect(run([], ['a', 'b'])).toEqual({ out: 'ab', stopped: false });
  });

  it('cuts before a stop string inside one piece', () => {
    expect(run(['END'], ['abcENDdef'])).toEqual({ out: 'abc', stopped: true });
  });

  it('finds a stop string split across pieces and never emits its start', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('abcE')).toEqual({ emit: 'abc', stopped: false });
    expect(m.push('N')).toEqual({ emit: '', stopped: false });
    expect(m.push('Dxyz')).toEqual({ emit: '', stopped: true, stop: 'END' });
  });

  it('releases held text when the stop does not complete', () => {
    expect(run(['END'], ['abE', 'Nx', 'y'])).toEqual({ out: 'abENxy', stopped: false });
  });

  it('picks the earliest of several stops', () => {
    expect(run(['zz', 'b'], ['aazzb'])).toEqual({ out: 'aa', stopped: true });
  });

  it('flushes held text at the end', () => {
    expect(run(['END'], ['abcEN'])).toEqual({ out: 'abcEN', stopped: false });
  });
});
