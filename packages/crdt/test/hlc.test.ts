import { hasCode } from '@lattice/errors';
import { asPeerId, hlcCounter, hlcWall, HybridClock, packHlc } from '@lattice/crdt';
import type { HlcTime } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';

const peer = asPeerId('p');

describe('HybridClock', () => {
  it('follows the wall clock and counts within one millisecond', () => {
    let wall = 1000;
    const c = new HybridClock({ peer, wallClock: () => wall });
    const a = c.now();
    const b = c.now();
    expect(hlcWall(a.time)).toBe(1000);
    expect(hlcCounter(b.time)).toBe(1);
    wall = 2000;
    expect(c.now().time).toBe(packHlc(2000, 0));
  });

  it('never runs backwards when the wall clock does', () => {
    let wall = 5000;
    const c = new HybridClock({ peer, wallClock: () => wall });
    const a = c.now();
    wall = 1000;
    const b = c.now();
    expect(b.time).toBeGreaterThan(a.time);
  });

  it('stays monotonic across a restart given the persisted high-water mark', () => {
    let wall = 5000;
    const c1 = new HybridClock({ peer, wallClock: () => wall });
    for (let i = 0; i < 10; i++) c1.now();
    const hwm = c1.highWaterMark;
    wall = 100; // the device rebooted with a bad clock
    const c2 = new HybridClock({ peer, wallClock: () => wall, highWaterMark: hwm });
    expect(c2.now().time).toBeGreaterThan(hwm);
  });

  it('takes the max of local, remote and wall time on receipt', () => {
    const wall = 10_000;
    const c = new HybridClock({ peer, wallClock: () => wall, maxDriftMs: 1000 });
    const remote = packHlc(10_500, 7);
    c.receive(remote);
    expect(c.now().time).toBeGreaterThan(remote);
    c.receive(packHlc(1, 0)); // an old remote time changes nothing
    expect(hlcWall(c.now().time)).toBe(10_500);
  });

  it('accepts a remote time exactly at the drift bound and refuses one beyond it, unchanged', () => {
    const c = new HybridClock({ peer, wallClock: () => 10_000, maxDriftMs: 1000 });
    expect(() => c.receive(packHlc(11_000, 2047))).not.toThrow();
    const before = c.highWaterMark;
    let err: unknown;
    try {
      c.receive(packHlc(12_001, 0) as HlcTime);
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'CRDT_CLOCK_DRIFT')).toBe(true);
    expect(c.highWaterMark).toBe(before);
  });

  it('carries counter overflow into the wall part', () => {
    const c = new HybridClock({ peer, wallClock: () => 7 });
    let last = 0;
    for (let i = 0; i < 3000; i++) {
      const t = c.now().time;
      expect(t).toBeGreaterThan(last);
      last = t;
    }
    expect(hlcWall(last as HlcTime)).toBe(8);
  });
});
