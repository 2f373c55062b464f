import { randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { hasCode } from '@lattice/errors';
import { v1 } from '@lattice/proto';
import { describe, expect, it } from 'vitest';
import {
  decodeSyncMessage,
  encodeSyncMessage,
  MAX_INFLATED_BYTES,
  PACK_FROM_BYTES,
} from '@lattice/merge';
import { encodeDeltasMessage } from '../src/message-codec.js';

const deltas = (n: number): v1.ISyncMessage => ({
  trace: { traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01' },
  deltas: {
    batch: 7,
    throughCommit: 42,
    subscriptionsHash: 'ab'.repeat(32),
    deltas: Array.from({ length: n }, (_, i) => ({
      collection: 'c',
      delta: new TextEncoder().encode(`document ${i} with a field named title`),
    })),
  },
});

const packed = (length: number, deflated: Uint8Array): Uint8Array =>
  v1.SyncMessage.encode({ packed: { length, deflated } }).finish();

function protocolError(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected a MERGE_PROTOCOL error');
}

describe('sync message codec', () => {
  it('packs a large message that deflate shrinks, and reads it back whole', () => {
    const msg = deltas(100);
    const plain = v1.SyncMessage.encode(msg).finish();
    const bytes = encodeSyncMessage(msg, { pack: true });
    expect(bytes.length).toBeLessThan(plain.length / 4);
    expect(v1.SyncMessage.decode(bytes).body).toBe('packed');
    expect(v1.SyncMessage.toObject(decodeSyncMessage(bytes))).toEqual(
      v1.SyncMessage.toObject(v1.SyncMessage.decode(plain)),
    );
  });

  it('leaves small, incompressible and hello messages (and everything when told) as they are', () => {
    const small: v1.ISyncMessage = { ack: { batch: 1, throughCommit: 2 } };
    expect(encodeSyncMessage(small, { pack: true })).toEqual(v1.SyncMessage.encode(small).finish());
    const noise = new Uint8Array(randomBytes(4 * PACK_FROM_BYTES));
    const random: v1.ISyncMessage = { deltas: { batch: 1, deltas: [{ delta: noise }] } };
    expect(v1.SyncMessage.decode(encodeSyncMessage(random, { pack: true })).body).toBe('deltas');
    const hello: v1.ISyncMessage = {
      hello: { peerId: 'p'.repeat(PACK_FROM_BYTES), protocolVersion: 2 },
    };
    expect(v1.SyncMessage.decode(encodeSyncMessage(hello, { pack: true })).body).toBe('hello');
    expect(v1.SyncMessage.decode(encodeSyncMessage(deltas(100), { pack: false })).body).toBe(
      'deltas',
    );
  });

  it('refuses hostile packed messages with MERGE_PROTOCOL, within bounded memory', () => {
    const inner = v1.SyncMessage.encode(deltas(100)).finish();
    const good = deflateRawSync(inner);
    const cases: [string, Uint8Array][] = [
      ['not a message', new Uint8Array([0xff, 0xff, 0xff])],
      ['declared too large', packed(MAX_INFLATED_BYTES + 1, good)],
      ['declared too small to be packed', packed(PACK_FROM_BYTES - 1, good)],
      ['declared shorter than it inflates', packed(inner.length - 1, good)],
      ['declared longer than it inflates', packed(inner.length + 1, good)],
      ['not a deflate stream', packed(inner.length, new Uint8Array(64).fill(0xff))],
      ['truncated stream', packed(inner.length, good.subarray(0, good.length >> 1))],
      // 64 MiB of zeros in ~64 KiB: inflation stops at the declared length.
      ['deflate bomb', packed(1024 * 1024, deflateRawSync(new Uint8Array(64 * 1024 * 1024)))],
      ['inflates to garbage', packed(1024, deflateRawSync(new Uint8Array(1024).fill(0xff)))],
    ];
    for (const [what, bytes] of cases) {
      const err = protocolError(() => decodeSyncMessage(bytes));
      expect(hasCode(err, 'MERGE_PROTOCOL'), what).toBe(true);
    }
    // A packed message inside a packed one (each inflates to what it declares).
    const noise = new Uint8Array(randomBytes(1024));
    const once = packed(1024, deflateRawSync(noise));
    const twice = packed(once.length, deflateRawSync(once));
    const err = protocolError(() => decodeSyncMessage(twice));
    expect(hasCode(err, 'MERGE_PROTOCOL')).toBe(true);
    expect((err as Error).message).toContain('inside a packed one');
  });

  it('writes a message of deltas byte for byte as protobufjs does', () => {
    const uint = fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: 300 }),
      fc.maxSafeNat(),
      fc.constant(Number.MAX_SAFE_INTEGER),
      // A `Long`-shaped value, as the generated prototypes default 64-bit fields to.
      fc
        .record({
          low: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff_ffff })),
          high: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0x1f_ffff })),
          unsigned: fc.constant(true),
        })
        .map((l) => l as unknown as number),
    );
    const text = fc.oneof(
      fc.constant(''),
      fc.string({ maxLength: 70 }),
      fc.string({ unit: 'binary', maxLength: 20 }),
    );
    const delta = fc.record(
      {
        collection: fc.oneof(text, fc.constant('c')),
        delta: fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.constant(new Uint8Array(20_000).fill(7)),
        ),
      },
      { requiredKeys: [] },
    );
    const message = fc.record(
      {
        trace: fc.record(
          { traceparent: fc.string(), tracestate: fc.string() },
          { requiredKeys: ['traceparent'] },
        ),
        deltas: fc.record(
          {
            batch: uint,
            throughCommit: uint,
            subscriptionsHash: fc.oneof(fc.constant(''), fc.constant('ab'.repeat(32)), text),
            deltas: fc.array(delta, { maxLength: 12 }),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ['deltas'] },
    );
    fc.assert(
      fc.property(message, (m: v1.ISyncMessage) => {
        const ours = encodeSyncMessage(m, { pack: false });
        expect(Buffer.from(ours).equals(Buffer.from(v1.SyncMessage.encode(m).finish()))).toBe(true);
        // The hand-written path takes every such message whose strings are ASCII.
        const ascii = (t: string | null | undefined): boolean =>
          [...(t ?? '')].every((c) => c.charCodeAt(0) < 0x80);
        const d = m.deltas;
        if (ascii(d?.subscriptionsHash) && (d?.deltas ?? []).every((x) => ascii(x.collection)))
          expect(encodeDeltasMessage(m)).toBeDefined();
        // And it reads back.
        const back = decodeSyncMessage(ours);
        expect(back.body).toBe('deltas');
        expect(back.deltas?.deltas?.length).toBe(m.deltas?.deltas?.length ?? 0);
      }),
      { numRuns: 300 },
    );
  });
});
