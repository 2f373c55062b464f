import { fc, test } from '@fast-check/vitest';
import { hasCode } from '@lattice/errors';
import { CODEC_LIMITS, CrdtDocument, decodeDelta, encodeDelta } from '@lattice/crdt';
import { v1 } from '@lattice/proto';
import { describe, expect, it } from 'vitest';
import { run, stateOf, stepsArb } from './arbitraries.js';
import { Replica } from './helpers.js';

function decodeError(bytes: Uint8Array): unknown {
  try {
    decodeDelta(bytes);
    return undefined;
  } catch (e) {
    return e;
  }
}

/** Decoding either succeeds with a usable document or fails with CRDT_DECODE; nothing else. */
function expectTypedOutcome(bytes: Uint8Array): void {
  const err = decodeError(bytes);
  if (err === undefined) {
    const doc = CrdtDocument.fromDelta(decodeDelta(bytes));
    doc.toJSON();
    return;
  }
  expect(hasCode(err, 'CRDT_DECODE', 'CRDT_DOC_TOO_LARGE'), String(err)).toBe(true);
}

function sample(): Uint8Array {
  const a = new Replica('alice', { region: 'eu', n: 4 });
  a.insert({
    _id: { region: 'eu', n: 4 },
    title: 'x',
    meta: { a: [1, 2.5, 'z'], b: { c: null } },
    bin: new Uint8Array([1, 2]),
  });
  a.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['n'], by: 3 }], unset: [['title']] });
  a.write({ kind: 'update', apply: [{ op: 'RESTART', path: ['n'], with: 9 }] });
  return encodeDelta(a.doc.snapshot());
}

describe('codec', () => {
  it('round-trips a document with every CRDT kind', () => {
    const bytes = sample();
    const doc = CrdtDocument.fromDelta(decodeDelta(bytes));
    expect(doc.toJSON()).toEqual({
      _id: { n: 4, region: 'eu' },
      bin: new Uint8Array([1, 2]),
      meta: { a: [1, 2.5, 'z'], b: { c: null } },
      n: 9,
    });
    expect(encodeDelta(doc.snapshot())).toEqual(bytes);
  });

  it('interns peer ids and offsets times, so a 100-key delta stays small', () => {
    const a = new Replica('a-rather-long-peer-identifier');
    a.insert({ _id: 'doc' });
    const b = new Replica('b');
    b.pull(a);
    const set = Array.from({ length: 100 }, (_, i) => ({ path: [`key${i}`], value: i * 1000 }));
    a.write({ kind: 'update', set });
    const bytes = encodeDelta(a.doc.delta(b.doc.versionVector));
    const minimum = set.reduce((n, s) => n + (s.path[0] as string).length + 3, 0);
    expect(bytes.length).toBeLessThan(minimum * 3);
    expect(new TextDecoder().decode(bytes).split('a-rather-long-peer-identifier').length - 1).toBe(
      1,
    );
  });

  test.prop([stepsArb(2)], { numRuns: 100 })(
    'decodes what it encodes (arbitrary histories)',
    (steps) => {
      const [a] = run(steps, 2);
      if (!a) return;
      expect(stateOf(CrdtDocument.fromDelta(decodeDelta(encodeDelta(a.doc.snapshot()))))).toBe(
        stateOf(a.doc),
      );
    },
  );

  test.prop([fc.uint8Array({ maxLength: 512 })], { numRuns: 2000 })(
    'random bytes: typed error or valid document',
    (bytes) => {
      expectTypedOutcome(bytes);
    },
  );

  test.prop(
    [
      fc.array(
        fc.record({
          at: fc.nat(),
          byte: fc.integer({ min: 0, max: 255 }),
          op: fc.constantFrom('flip', 'insert', 'delete', 'truncate'),
        }),
        { minLength: 1, maxLength: 6 },
      ),
    ],
    { numRuns: 2000 },
  )('mutated valid bytes: typed error or valid document', (mutations) => {
    let bytes = Array.from(sample());
    for (const m of mutations) {
      const i = m.at % Math.max(bytes.length, 1);
      if (m.op === 'flip') bytes[i] = m.byte;
      else if (m.op === 'insert') bytes.splice(i, 0, m.byte);
      else if (m.op === 'delete') bytes.splice(i, 1);
      else bytes = bytes.slice(0, i);
    }
    expectTypedOutcome(Uint8Array.from(bytes));
  });

  it('refuses oversized input before parsing', () => {
    expect(hasCode(decodeError(new Uint8Array(CODEC_LIMITS.maxBytes + 1)), 'CRDT_DECODE')).toBe(
      true,
    );
  });

  it('refuses deep nesting, bad peer indexes and bad times with typed errors', () => {
    let slot: v1.CrdtSlot.$Properties = { key: 'leaf' };
    for (let i = 0; i < 30; i++)
      slot = { key: `k${i}`, children: [slot], mapDots: [{ peer: 0, time: 1 }] };
    const deep = v1.CrdtDocState.encode({
      docId: new Uint8Array([0x20, 0x61, 0, 1]),
      peers: ['p'],
      fields: [slot],
    }).finish();
    expect(hasCode(decodeError(deep), 'CRDT_DECODE')).toBe(true);
    const badPeer = v1.CrdtDocState.encode({
      docId: new Uint8Array([0x20, 0x61, 0, 1]),
      peers: ['p'],
      fields: [{ key: 'x', mapDots: [{ peer: 7, time: 1 }] }],
    }).finish();
    expect(hasCode(decodeError(badPeer), 'CRDT_DECODE')).toBe(true);
    const badTime = v1.CrdtDocState.encode({
      docId: new Uint8Array([0x20, 0x61, 0, 1]),
      peers: ['p'],
      baseTime: 2 ** 53,
      fields: [{ key: 'x', mapDots: [{ peer: 0, time: 5 }] }],
    }).finish();
    expect(hasCode(decodeError(badTime), 'CRDT_DECODE')).toBe(true);
    const dupPeer = v1.CrdtDocState.encode({
      docId: new Uint8Array([0x20, 0x61, 0, 1]),
      peers: ['p', 'p'],
    }).finish();
    expect(hasCode(decodeError(dupPeer), 'CRDT_DECODE')).toBe(true);
    let value: v1.CrdtValue.$Properties = { nullValue: true };
    for (let i = 0; i < 40; i++) value = { arrayValue: { items: [value] } };
    const deepValue = v1.CrdtDocState.encode({
      docId: new Uint8Array([0x20, 0x61, 0, 1]),
      peers: ['p'],
      fields: [{ key: 'x', registers: [{ peer: 0, time: 1, value }] }],
    }).finish();
    expect(hasCode(decodeError(deepValue), 'CRDT_DECODE')).toBe(true);
  });

  it('a delta for another document is refused', () => {
    const a = new Replica('a', 'one');
    a.insert({ _id: 'one' });
    const other = CrdtDocument.create('two');
    expect(() => other.merge(a.doc.snapshot())).toThrow(
      expect.objectContaining({ code: 'CRDT_DOC_MISMATCH' }),
    );
  });
});
