import { deflateRawSync } from 'node:zlib';
import { fc, test } from '@fast-check/vitest';
import { hasCode } from '@lattice/errors';
import {
  asPeerId,
  CODEC_LIMITS,
  CrdtDocument,
  decodeDelta,
  decodeDocument,
  decodeVersionVector,
  DEFLATE_FROM_BYTES,
  encodeDelta,
  encodeDocId,
  encodeDocument,
  encodeVersionVector,
  valuesEqual,
} from '@lattice/crdt';
import type { PeerId, Value } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter, RleReader, RleWriter } from '../src/bytes.js';
import { adoptableBytes, slotBytes } from '../src/state.js';
import { run, stateOf, stepsArb } from './arbitraries.js';
import { Replica } from './helpers.js';

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e;
  }
}

function decodeError(bytes: Uint8Array): unknown {
  return errorOf(() => decodeDelta(bytes));
}

/** Decoding either succeeds with a usable document or fails with CRDT_DECODE; nothing else. */
function expectTypedOutcome(bytes: Uint8Array): void {
  const err = decodeError(bytes);
  if (err === undefined) {
    const delta = decodeDelta(bytes);
    // Whatever decodes is canonical: it re-encodes to the same bytes.
    expect(Buffer.from(encodeDelta(delta)).equals(Buffer.from(bytes))).toBe(true);
    CrdtDocument.fromDelta(delta).toJSON();
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

/** Column contents of a hand-built message (see the format at the top of src/codec.ts). */
interface Columns {
  readonly id?: Uint8Array;
  readonly peers?: readonly string[];
  readonly kids?: readonly number[];
  readonly shape?: readonly number[];
  readonly key?: readonly number[];
  readonly peer?: readonly number[];
  readonly time?: readonly number[];
  readonly misc?: readonly number[];
  readonly tag?: readonly number[];
  readonly keys?: readonly number[];
  readonly data?: readonly number[];
}

/** Builds a message from explicit columns, so tests can break exactly one rule. */
function craft(c: Columns): Uint8Array {
  const w = new ByteWriter();
  w.byte(0x01);
  const id = c.id ?? encodeDocId('doc');
  w.varint(id.length);
  w.bytes(id);
  const peers = c.peers ?? ['p'];
  w.varint(peers.length);
  for (const p of peers) w.string(p);
  const rle = (values: readonly number[] | undefined, signed = false): void => {
    const r = new RleWriter(signed);
    for (const v of values ?? []) r.push(v);
    r.writeTo(w);
  };
  rle(c.kids);
  rle(c.shape);
  rle(c.key);
  rle(c.peer);
  rle(c.time, true);
  rle(c.misc);
  rle(c.tag);
  for (const raw of [c.keys ?? [], c.data ?? []]) {
    w.varint(raw.length);
    w.bytes(Uint8Array.from(raw));
  }
  return w.finish().slice();
}

/** A valid message: field `x` holds register value 7 written by `p` at time 5. */
const valid: Columns = {
  kids: [1, 0],
  shape: [0, 1],
  key: [1], // prefix 0, suffix 1 byte
  peer: [0, 0],
  time: [5, 0],
  misc: [0, 1],
  tag: [3],
  keys: [0x78],
  data: [7],
};

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

  it('hand-built messages decode (the format documented in src/codec.ts)', () => {
    const delta = decodeDelta(craft(valid));
    expect(CrdtDocument.fromDelta(delta).get(['x'])).toBe(7);
    expect(delta.versionVector.get(asPeerId('p'))).toBe(5);
  });

  it('interns peer ids and front-codes keys, so a 100-key delta is below the raw key bytes', () => {
    const a = new Replica('a-rather-long-peer-identifier');
    a.insert({ _id: 'doc' });
    const b = new Replica('b');
    b.pull(a);
    const set = Array.from({ length: 100 }, (_, i) => ({ path: [`key${i}`], value: i * 1000 }));
    a.write({ kind: 'update', set });
    const bytes = encodeDelta(a.doc.delta(b.doc.versionVector));
    const minimum = set.reduce((n, s) => n + (s.path[0] as string).length + 3, 0);
    expect(bytes.length).toBeLessThan(minimum);
    expect(new TextDecoder().decode(bytes).split('a-rather-long-peer-identifier').length - 1).toBe(
      1,
    );
  });

  it('deflates exactly the bodies of at least DEFLATE_FROM_BYTES', () => {
    const small = new Replica('a');
    small.insert({ _id: 'doc', x: 1 });
    expect(encodeDelta(small.doc.snapshot())[0]).toBe(0x01);
    const big = new Replica('a');
    big.insert({
      _id: 'doc',
      ...Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`field-${i}`, `v${i}`])),
    });
    const bytes = encodeDelta(big.doc.snapshot());
    expect(bytes[0]).toBe(0x81);
    expect(new ByteReader(bytes, 1).varint()).toBeGreaterThanOrEqual(DEFLATE_FROM_BYTES);
    expect(stateOf(CrdtDocument.fromDelta(decodeDelta(bytes)))).toBe(stateOf(big.doc));
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

  test.prop([stepsArb(3)], { numRuns: 200 })(
    'the size a decoded delta reports is the size of its tree (summed while decoding)',
    (steps) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      // Full states, deltas (with clears, from deletes and UNSETs) and an empty delta.
      for (const delta of [
        a.doc.snapshot(),
        a.doc.delta(b.doc.versionVector),
        a.doc.delta(a.doc.versionVector),
      ]) {
        const decoded = decodeDelta(encodeDelta(delta));
        expect(decoded._bytes).toBe(slotBytes(decoded.root));
        expect(decoded._adoptableBytes).toBe(adoptableBytes(decoded.root));
        expect(delta._bytes).toBe(slotBytes(delta.root));
      }
    },
  );

  test.prop([stepsArb(3), stepsArb(2, 6)], { numRuns: 200 })(
    'decodeDocument equals fromDelta(decodeDelta), also after more writes and merges',
    (steps, later) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      for (const bytes of [encodeDocument(a.doc), encodeDelta(a.doc.delta(b.doc.versionVector))]) {
        const viaAdopt = new Replica('q', 'doc', a.wall + 10_000);
        viaAdopt.doc = decodeDocument(bytes);
        const viaMerge = new Replica('q', 'doc', a.wall + 10_000);
        viaMerge.doc = CrdtDocument.fromDelta(decodeDelta(bytes));
        expect(stateOf(viaAdopt.doc)).toBe(stateOf(viaMerge.doc));
        expect(viaAdopt.doc.byteSize).toBe(viaMerge.doc.byteSize);
        for (const s of later) {
          if (s.t !== 'write') continue;
          for (const r of [viaAdopt, viaMerge]) {
            r.wall += Math.max(s.tick, 0);
            r.write(s.intent);
          }
        }
        viaAdopt.pull(b);
        viaMerge.pull(b);
        expect(stateOf(viaAdopt.doc)).toBe(stateOf(viaMerge.doc));
        const since = b.doc.versionVector;
        expect(Buffer.from(encodeDelta(viaAdopt.doc.delta(since))).toString('hex')).toBe(
          Buffer.from(encodeDelta(viaMerge.doc.delta(since))).toString('hex'),
        );
      }
    },
  );

  test.prop([stepsArb(3)], { numRuns: 100 })(
    'deltas are canonical: decode then encode gives the same bytes',
    (steps) => {
      const [a, b] = run(steps, 3);
      if (!a || !b) return;
      const bytes = encodeDelta(a.doc.delta(b.doc.versionVector));
      const again = encodeDelta(decodeDelta(bytes));
      expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
    },
  );

  const keyArb = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
    fc.constantFrom('key', 'key1', 'key10', 'k\u{1F600}', 'k\u{1F601}', 'k\u00e9', ''),
  );
  const leaf: fc.Arbitrary<Value> = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.constantFrom(
      0,
      -0,
      -1,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      2 ** 53,
      -(2 ** 60),
      0.5,
      Number.MIN_VALUE,
      Number.MAX_VALUE,
    ),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.uint8Array({ maxLength: 8 }),
  );
  const { value: valueArb } = fc.letrec<{ value: Value }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(keyArb, tie('value'), { maxKeys: 4 }),
    ),
  }));

  test.prop([fc.dictionary(keyArb, valueArb, { maxKeys: 30 }).filter((d) => !('_id' in d))], {
    numRuns: 300,
  })('values and keys round-trip exactly (unicode, -0, large and fractional numbers)', (fields) => {
    const a = new Replica('p');
    a.insert({ _id: 'doc' });
    a.write({
      kind: 'update',
      set: Object.entries(fields).map(([k, v]) => ({ path: [k], value: v })),
    });
    const bytes = encodeDelta(a.doc.snapshot());
    const b = CrdtDocument.fromDelta(decodeDelta(bytes));
    for (const [k, v] of Object.entries(fields)) {
      const got = b.get([k]);
      // A register over an object value is a map here, so compare materialized values.
      expect(valuesEqual(got as Value, a.doc.get([k]) as Value)).toBe(true);
      if (typeof v === 'number') expect(Object.is(got, v)).toBe(true);
    }
    expect(Buffer.from(encodeDelta(b.snapshot())).equals(Buffer.from(bytes))).toBe(true);
  });

  test.prop([fc.uint8Array({ maxLength: 512 })], { numRuns: 2000 })(
    'random bytes: typed error or valid document',
    (bytes) => {
      expectTypedOutcome(bytes);
    },
  );

  test.prop([fc.uint8Array({ maxLength: 256 })], { numRuns: 1000 })(
    'random bytes after a valid header: typed error or valid document',
    (bytes) => {
      const id = encodeDocId('doc');
      const head = [0x01, id.length, ...id, 1, 1, 0x70];
      expectTypedOutcome(Uint8Array.from([...head, ...bytes]));
    },
  );

  const mutations = fc.array(
    fc.record({
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      op: fc.constantFrom('flip', 'insert', 'delete', 'truncate'),
    }),
    { minLength: 1, maxLength: 6 },
  );
  function mutate(input: Uint8Array, ms: readonly { at: number; byte: number; op: string }[]) {
    let bytes = Array.from(input);
    for (const m of ms) {
      const i = m.at % Math.max(bytes.length, 1);
      if (m.op === 'flip') bytes[i] = m.byte;
      else if (m.op === 'insert') bytes.splice(i, 0, m.byte);
      else if (m.op === 'delete') bytes.splice(i, 1);
      else bytes = bytes.slice(0, i);
    }
    return Uint8Array.from(bytes);
  }

  test.prop([mutations], { numRuns: 2000 })(
    'mutated valid bytes: typed error or valid document',
    (ms) => {
      expectTypedOutcome(mutate(sample(), ms));
    },
  );

  test.prop([mutations], { numRuns: 300 })(
    'mutated deflated bytes: typed error or valid document',
    (ms) => {
      const big = new Replica('a');
      big.insert({
        _id: 'doc',
        ...Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`f${i}`, i])),
      });
      expectTypedOutcome(mutate(encodeDelta(big.doc.snapshot()), ms));
    },
  );

  it('refuses oversized input before parsing', () => {
    expect(hasCode(decodeError(new Uint8Array(CODEC_LIMITS.maxBytes + 1)), 'CRDT_DECODE')).toBe(
      true,
    );
  });

  it('refuses a deflate stream that inflates beyond its declared length (bomb)', () => {
    const w = new ByteWriter();
    w.byte(0x81);
    w.varint(DEFLATE_FROM_BYTES);
    // A valid deflate stream of 1 MiB of zeros, declared as 4 KiB.
    w.bytes(new Uint8Array(zlibZeros(1 << 20)));
    expect(hasCode(decodeError(w.finish()), 'CRDT_DECODE')).toBe(true);
    const small = Uint8Array.from([0x81, 10, 0x03, 0x00]);
    expect(hasCode(decodeError(small), 'CRDT_DECODE')).toBe(true);
  });

  it('refuses every broken rule with CRDT_DECODE', () => {
    const cases: Record<string, Columns> = {
      'peer index out of range': { ...valid, peer: [0, 3] },
      'unreferenced peer': { ...valid, peers: ['p', 'q'] },
      'unsorted peers': { ...valid, peers: ['q', 'p'], peer: [1, 1] },
      'duplicate peers': { ...valid, peers: ['p', 'p'] },
      'time out of range': { ...valid, time: [2 ** 53 - 1, 1] },
      'negative time': { ...valid, time: [-1, 0] },
      'unsorted keys': {
        ...valid,
        kids: [2, 0, 0],
        shape: [0, 1, 1],
        key: [1, 1],
        peer: [0, 0, 0],
        time: [5, 0, 0],
        tag: [3, 3],
        keys: [0x79, 0x78],
        data: [7, 8],
      },
      'duplicate keys': {
        ...valid,
        kids: [2, 0, 0],
        shape: [0, 1, 1],
        key: [1, 16],
        peer: [0, 0, 0],
        time: [5, 0, 0],
        tag: [3, 3],
        keys: [0x78],
        data: [7, 8],
      },
      'key prefix not maximal': {
        ...valid,
        kids: [2, 0, 0],
        shape: [0, 1, 1],
        key: [2, 2],
        peer: [0, 0, 0],
        time: [5, 0, 0],
        tag: [3, 3],
        keys: [0x61, 0x61, 0x61, 0x62],
        data: [7, 8],
      },
      'two registers of one peer': {
        ...valid,
        shape: [0, 2],
        peer: [0, 0, 0],
        time: [5, 0, 1],
        tag: [3, 3],
        data: [7, 8],
      },
      'integer stored as a float': {
        ...valid,
        tag: [5],
        data: [0, 0, 0, 0, 0, 0, 0xf0, 0x3f],
      },
      'non-finite float': { ...valid, tag: [5], data: [0, 0, 0, 0, 0, 0, 0xf0, 0x7f] },
      'unknown value tag': { ...valid, tag: [42] },
      'attachment tag inside a value': { ...valid, tag: [8, 10, 3], data: [1, 7] },
      'invalid UTF-8 key': { ...valid, keys: [0xff] },
      'column with bytes left': { ...valid, data: [7, 1] },
      'column with values left': { ...valid, tag: [3, 3] },
      'non-minimal varint': { ...valid, data: [0x87, 0x00] },
      'bad _id': { ...valid, id: Uint8Array.from([0x99]) },
      'object keys not sorted': {
        ...valid,
        tag: [9, 0, 0],
        data: [2, 1, 0x62, 1, 0x61],
      },
    };
    for (const [name, columns] of Object.entries(cases)) {
      expect(hasCode(decodeError(craft(columns)), 'CRDT_DECODE'), name).toBe(true);
    }
  });

  it('refuses deep fields, deep values and huge counts with bounded work', () => {
    const depth = CODEC_LIMITS.maxDepth + 2;
    const deepFields: Columns = {
      kids: [...Array<number>(depth).fill(1), 0],
      shape: Array<number>(depth + 1).fill(0),
      key: Array<number>(depth).fill(0),
      misc: [0, 0],
    };
    expect(hasCode(decodeError(craft(deepFields)), 'CRDT_DECODE')).toBe(true);
    const deepValue: Columns = {
      ...valid,
      tag: [...Array<number>(40).fill(8), 0],
      data: Array<number>(40).fill(1),
    };
    expect(hasCode(decodeError(craft(deepValue)), 'CRDT_DECODE')).toBe(true);
    // An array that claims 2^40 items costs one check, not 2^40 steps.
    const hugeArray: Columns = { ...valid, tag: [8], data: [0x80, 0x80, 0x80, 0x80, 0x80, 0x20] };
    expect(hasCode(decodeError(craft(hugeArray)), 'CRDT_DECODE')).toBe(true);
    // A run of 2^40 empty-keyed children is refused at the second (duplicate) key.
    const hugeKids: Columns = { ...valid, kids: [2 ** 40, 0], key: [0, 0] };
    expect(hasCode(decodeError(craft(hugeKids)), 'CRDT_DECODE')).toBe(true);
  });

  it('a delta for another document is refused', () => {
    const a = new Replica('a', 'one');
    a.insert({ _id: 'one' });
    const other = CrdtDocument.create('two');
    expect(() => other.merge(a.doc.snapshot())).toThrow(
      expect.objectContaining({ code: 'CRDT_DOC_MISMATCH' }),
    );
  });

  it('pins the encoding of a fixed document (format regression)', () => {
    expect(Buffer.from(sample()).toString('hex')).toMatchInlineSnapshot(
      `"011d30016e000110c01000000000000001726567696f6e00012065750001000105616c6963650a030504000702000106000c030004010d040104015080020804030304080103050216001005828080b4e59faf0c420a00040104410509000100010a0f000708030506000403135f696462696e6d6574616162636e7469746c651102010203010000000000000440017a0309"`,
    );
  });
});

describe('version vector codec', () => {
  const vvArb = fc
    .dictionary(
      fc.string({ minLength: 1, maxLength: 20 }),
      fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 53 - 1, 3_600_000_000_000_000)),
      { maxKeys: 8 },
    )
    .map((o) => new Map(Object.entries(o).map(([k, v]) => [asPeerId(k), v])));

  test.prop([vvArb], { numRuns: 500 })('round-trips and is canonical', (vv) => {
    const bytes = encodeVersionVector(vv);
    const back = decodeVersionVector(bytes);
    expect([...back].sort()).toEqual([...vv].sort());
    expect(Buffer.from(encodeVersionVector(back)).equals(Buffer.from(bytes))).toBe(true);
  });

  test.prop([fc.uint8Array({ maxLength: 64 })], { numRuns: 1000 })(
    'random bytes: typed error or a version vector',
    (bytes) => {
      const err = errorOf(() => decodeVersionVector(bytes));
      if (err !== undefined) expect(hasCode(err, 'CRDT_DECODE'), String(err)).toBe(true);
    },
  );

  it('is small: a handshake with 4 peers fits in ~60 bytes', () => {
    const t = 1_700_000_000_000 * 2048;
    const vv = new Map<PeerId, number>(
      ['peer-alpha', 'peer-bravo', 'peer-charlie', 'peer-delta'].map((p, i) => [
        asPeerId(p),
        t + i * 1000,
      ]),
    );
    expect(encodeVersionVector(vv).length).toBeLessThan(70);
  });
});

describe('RLE columns', () => {
  test.prop([fc.array(fc.integer({ min: -3, max: 3 })), fc.boolean()], { numRuns: 500 })(
    'round-trip and reject nothing they wrote',
    (values, signed) => {
      const rw = new RleWriter(signed);
      const input = signed ? values : values.map(Math.abs);
      for (const v of input) rw.push(v);
      const w = new ByteWriter();
      rw.writeTo(w);
      const r = new ByteReader(w.finish());
      const len = r.varint();
      const rr = new RleReader(r.buf, r.pos, r.pos + len, signed);
      expect(input.map(() => rr.next())).toEqual(input);
      rr.finish();
    },
  );
});

/** A raw deflate stream of `n` zero bytes. */
function zlibZeros(n: number): Buffer {
  return deflateRawSync(Buffer.alloc(n));
}
