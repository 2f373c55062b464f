import { describe, expect, it } from 'vitest';
import { v1 } from '@lattice/proto';

describe('64-bit fields', () => {
  it('are plain numbers, absent or present, decoded or defaulted', () => {
    const absent = v1.SyncHello.decode(v1.SyncHello.encode({}).finish());
    expect(absent.resumeFrom).toBe(0);
    expect(v1.Envelope.create().deadlineUnixMs).toBe(0);
    const big = 2 ** 52 + 3;
    const present = v1.SyncHello.decode(v1.SyncHello.encode({ resumeFrom: big }).finish());
    expect(present.resumeFrom).toBe(big);
  });
});
