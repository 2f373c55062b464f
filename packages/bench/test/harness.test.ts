import { describe, expect, it } from 'vitest';
import { BenchSuite } from '@lattice/bench';

describe('BenchSuite', () => {
  it('measures subjects side by side and computes ratios to the anchor', async () => {
    const suite = new BenchSuite('demo');
    let sink = 0;
    await suite.measure(
      'sum',
      {
        fast: () => {
          sink += 1;
        },
        slow: () => {
          for (let i = 0; i < 2_000; i++) sink += i;
        },
      },
      { anchor: 'slow', timeMs: 100 },
    );
    const fast = suite.rows.find((r) => r.subject === 'fast' && r.metric === 'throughput');
    const slow = suite.rows.find((r) => r.subject === 'slow' && r.metric === 'throughput');
    expect(fast?.value).toBeGreaterThan(slow?.value ?? Infinity);
    expect(suite.ratio(fast!)).toBeGreaterThan(1);
    expect(suite.ratio(slow!)).toBeUndefined();
    suite.record('size', 'ours', 'bytes', 50, 'bytes', 'theirs');
    suite.record('size', 'theirs', 'bytes', 200, 'bytes');
    expect(suite.ratio(suite.rows.at(-2)!)).toBe(0.25);
    expect(suite.format()).toContain('| size ');
    expect(sink).toBeGreaterThan(0);
  });

  it('refuses an anchor that is not measured', async () => {
    await expect(new BenchSuite('x').measure('c', { a: () => 1 }, { anchor: 'b' })).rejects.toThrow(
      RangeError,
    );
  });
});
