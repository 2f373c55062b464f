import { hasCode } from '@lattice/errors';
import {
  CrdtDocument,
  decodeDocument,
  DOC_MAX_BYTES,
  encodeDelta,
  encodeDocument,
} from '@lattice/crdt';
import type { Value } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';
import { Replica, sync } from './helpers.js';

function pair(): [Replica, Replica] {
  const a = new Replica('a');
  a.insert({ _id: 'doc' });
  const b = new Replica('b');
  sync(a, b);
  return [a, b];
}

describe('SEMANTICS.md merge rules', () => {
  it('SET obj = {...} merges into a map and keeps unmentioned keys', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', obj: { x: 1, y: 2 } });
    a.set(['obj'], { z: 3 });
    expect(a.doc.get(['obj'])).toEqual({ x: 1, y: 2, z: 3 });
  });

  it('SET obj = {} changes nothing', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', obj: { x: 1 } });
    const r = a.write({ kind: 'update', set: [{ path: ['obj'], value: {} }] });
    expect(r.changed).toBe(false);
    expect(r.delta).toBeUndefined();
    expect(a.doc.get(['obj'])).toEqual({ x: 1 });
  });

  it('UNSET is the only way to remove a key', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', obj: { x: 1, y: 2 } });
    a.unset(['obj', 'x']);
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', obj: { y: 2 } });
  });

  it('a scalar over a map and later an object brings the old keys back', () => {
    const [a, b] = pair();
    a.set(['obj'], { x: 1, y: 2 });
    a.set(['obj'], 5);
    expect(a.doc.get(['obj'])).toBe(5);
    sync(a, b);
    expect(b.doc.get(['obj'])).toBe(5);
    b.set(['obj'], { z: 3 });
    sync(a, b);
    expect(a.doc.get(['obj'])).toEqual({ x: 1, y: 2, z: 3 });
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
  });

  it('two INSERTs of the same _id on different peers merge field by field', () => {
    const a = new Replica('a');
    const b = new Replica('b');
    a.insert({ _id: 'doc', title: 'from a', meta: { x: 1 } });
    b.insert({ _id: 'doc', assignee: 'bob', meta: { y: 2 } });
    sync(a, b);
    expect(a.doc.toJSON()).toEqual({
      _id: 'doc',
      assignee: 'bob',
      meta: { x: 1, y: 2 },
      title: 'from a',
    });
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
  });

  it('arrays are one register: concurrent edits keep the later whole array', () => {
    const [a, b] = pair();
    a.set(['tags'], ['a1', 'a2']);
    b.wall += 5;
    b.set(['tags'], ['b1']);
    sync(a, b);
    expect(a.doc.get(['tags'])).toEqual(['b1']);
    expect(b.doc.get(['tags'])).toEqual(['b1']);
  });

  it('register ties on equal clock time break on peer id', () => {
    const [a, b] = pair();
    a.wall = b.wall = 1_800_000_000_000;
    a.set(['x'], 'a');
    b.set(['x'], 'b');
    sync(a, b);
    expect(a.doc.get(['x'])).toBe('b');
    expect(b.doc.get(['x'])).toBe('b');
  });

  it('delete with a concurrent update leaves a husk holding only the updated fields', () => {
    const [a, b] = pair();
    a.set(['title'], 't');
    a.set(['meta'], { x: 1, y: 2 });
    sync(a, b);
    a.write({ kind: 'delete' });
    expect(a.doc.exists).toBe(false);
    expect(a.doc.isTombstone).toBe(true);
    b.set(['meta', 'y'], 3);
    b.set(['status'], 'open');
    sync(a, b);
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', meta: { y: 3 }, status: 'open' });
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
    expect(a.doc.get(['title'])).toBeUndefined();
  });

  it('a delete without concurrent updates leaves a tombstone everywhere', () => {
    const [a, b] = pair();
    a.set(['title'], 't');
    sync(a, b);
    b.write({ kind: 'delete' });
    sync(a, b);
    expect(a.doc.toJSON()).toBeUndefined();
    expect(a.doc.isTombstone).toBe(true);
  });

  it('UNSET removes only the writes the remover had seen', () => {
    const [a, b] = pair();
    a.set(['k'], 'seen');
    sync(a, b);
    b.set(['k'], 'concurrent');
    a.unset(['k']);
    sync(a, b);
    expect(a.doc.get(['k'])).toBe('concurrent');
    expect(b.doc.get(['k'])).toBe('concurrent');
  });

  it('UNSET removes a concurrent loser too only if seen, and converges either way', () => {
    const [a, b] = pair();
    const c = new Replica('c');
    sync(a, c);
    a.set(['k'], 'a'); // later
    b.wall -= 10;
    b.set(['k'], 'b'); // earlier, concurrent
    sync(a, c); // c saw only a's write
    c.unset(['k']);
    sync(a, b);
    sync(b, c);
    sync(a, c);
    expect(a.doc.get(['k'])).toBe('b');
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
    expect(c.doc.toJSON()).toEqual(a.doc.toJSON());
  });

  it('counters add up increments from all peers', () => {
    const [a, b] = pair();
    a.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['stock'], by: 5 }] });
    b.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['stock'], by: 3 }] });
    a.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['stock'], by: -1 }] });
    sync(a, b);
    sync(a, b);
    expect(a.doc.get(['stock'])).toBe(7);
    expect(b.doc.get(['stock'])).toBe(7);
  });

  it('RESTART WITH is last-writer-wins and drops the increments the restarter had not seen', () => {
    const [a, b] = pair();
    a.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['n'], by: 10 }] });
    sync(a, b);
    b.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['n'], by: 4 }] }); // unseen by a
    a.write({ kind: 'update', apply: [{ op: 'RESTART', path: ['n'], with: 100 }] });
    sync(a, b);
    expect(a.doc.get(['n'])).toBe(100);
    expect(b.doc.get(['n'])).toBe(100);
    b.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['n'], by: 1 }] }); // after seeing the restart
    sync(a, b);
    expect(a.doc.get(['n'])).toBe(101);
  });

  it('PN_COUNTER adds up PN_INCREMENTs and cannot be restarted', () => {
    const [a, b] = pair();
    a.write({ kind: 'update', apply: [{ op: 'PN_INCREMENT', path: ['pn'], by: 2 }] });
    b.write({ kind: 'update', apply: [{ op: 'PN_INCREMENT', path: ['pn'], by: -5 }] });
    sync(a, b);
    expect(b.doc.get(['pn'])).toBe(-3);
    expect(() =>
      a.write({
        kind: 'update',
        apply: [{ op: 'RESTART', path: ['pn'] }],
        typedefs: { pn: 'PN_COUNTER' },
      }),
    ).toThrow(expect.objectContaining({ code: 'CRDT_INVALID_INTENT' }));
  });

  it('explicit typedefs: an object declared REGISTER is replaced whole; ATTACHMENT holds a token', () => {
    const a = new Replica('a');
    a.write({
      kind: 'insert',
      document: { _id: 'doc', address: { street: 's', city: 'c' } },
      typedefs: { address: 'REGISTER' },
    });
    a.write({
      kind: 'update',
      set: [{ path: ['address'], value: { city: 'd' } }],
      typedefs: { address: 'REGISTER' },
    });
    expect(a.doc.get(['address'])).toEqual({ city: 'd' });
    const token = { id: 'sha256:ab', len: 10, metadata: { name: 'photo.jpg' } };
    a.write({
      kind: 'update',
      set: [{ path: ['photo'], value: token }],
      typedefs: { photo: 'ATTACHMENT' },
    });
    expect(a.doc.get(['photo'])).toEqual(token);
    expect(() =>
      a.write({
        kind: 'update',
        set: [{ path: ['photo'], value: 'x' }],
        typedefs: { photo: 'ATTACHMENT' },
      }),
    ).toThrow(expect.objectContaining({ code: 'CRDT_INVALID_VALUE' }));
    a.write({
      kind: 'update',
      set: [{ path: ['stock'], value: 9 }],
      typedefs: { stock: 'COUNTER' },
    });
    a.write({ kind: 'update', apply: [{ op: 'INCREMENT', path: ['stock'], by: 1 }] });
    expect(a.doc.get(['stock'])).toBe(10);
  });

  it('MISSING is not null', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', n: null });
    expect(a.doc.get(['n'])).toBeNull();
    expect(a.doc.get(['m'])).toBeUndefined();
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', n: null });
  });

  it('applying a change twice changes nothing', () => {
    const [a, b] = pair();
    const r = a.write({ kind: 'update', set: [{ path: ['x'], value: 1 }] });
    expect(r.delta).toBeDefined();
    if (r.delta === undefined) return;
    expect(b.doc.merge(r.delta).changed).toBe(true);
    expect(b.doc.merge(r.delta).changed).toBe(false);
    expect(b.doc.get(['x'])).toBe(1);
  });

  it('SET _id is an error; INSERT ON ID CONFLICT FAIL names the id', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc' });
    expect(() => a.set(['_id'], 'x')).toThrow(
      expect.objectContaining({ code: 'CRDT_INVALID_INTENT' }),
    );
    let err: unknown;
    try {
      a.insert({ _id: 'doc', x: 1 });
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'CRDT_ID_CONFLICT')).toBe(true);
    expect((err as { details: Record<string, string> }).details['id']).toBe('"doc"');
  });

  it('ON ID CONFLICT DO NOTHING and DO UPDATE', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', x: 1, y: 1 });
    a.insert({ _id: 'doc', x: 2 }, 'DO_NOTHING');
    expect(a.doc.get(['x'])).toBe(1);
    a.insert({ _id: 'doc', x: 3 }, 'DO_UPDATE');
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', x: 3, y: 1 });
  });

  it('INITIAL DOCUMENTS never override existing data', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc', x: 'real' });
    const r = a.write({ kind: 'insert', document: { _id: 'doc', x: 'seed' }, initial: true });
    expect(r.changed).toBe(false);
    const b = new Replica('b');
    b.write({ kind: 'insert', document: { _id: 'doc', x: 'seed', s: 1 }, initial: true });
    expect(b.doc.get(['x'])).toBe('seed');
    sync(a, b);
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', s: 1, x: 'real' });
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
  });

  it('refuses a write over 5 MiB, and a merge that would produce one, without breaking later writes', () => {
    const big = 'x'.repeat(3 * 1024 * 1024);
    const [a, b] = pair();
    const r = a.write({ kind: 'update', set: [{ path: ['blobA'], value: big }] });
    expect(r.warning?.code).toBe('CRDT_DOC_LARGE');
    b.set(['blobB'], big);
    expect(() => a.set(['blobC'], big)).toThrow(
      expect.objectContaining({ code: 'CRDT_DOC_TOO_LARGE' }),
    );
    const before = a.doc.toJSON();
    let err: unknown;
    try {
      a.pull(b);
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'CRDT_DOC_TOO_LARGE')).toBe(true);
    expect(a.doc.toJSON()).toEqual(before);
    expect(a.doc.byteSize).toBeLessThanOrEqual(DOC_MAX_BYTES);
    a.set(['small'], 1); // later writes still work
    expect(a.doc.get(['small'])).toBe(1);
  });

  it('a refused merge into fields the document holds leaves state, version vector and deltas as they were', () => {
    const big = 'y'.repeat(700 * 1024);
    const [a, b] = pair();
    a.set(['m'], { k1: 'a1', k2: big });
    a.set(['r'], big);
    a.set(['n'], 1);
    sync(a, b);
    // Concurrent: b overwrites fields a holds (a nested one, a top-level one) and adds one; a
    // grows, so the merged document would be over the limit.
    b.set(['m', 'k1'], big);
    b.set(['r'], `${big}!`);
    b.set(['m', 'k3'], big);
    b.unset(['n']);
    a.set(['m', 'k4'], big);
    a.set(['m', 'k5'], big);
    a.set(['k6'], big);
    // Loaded from bytes, as the store does: a's slots belong to it alone (not shared with a
    // snapshot or clone), so nothing is copied on write unless the merge arranges it.
    const bytes = encodeDocument(a.doc);
    a.doc = decodeDocument(bytes);
    const vv = new Map(a.doc.versionVector);
    const fromB = encodeDelta(a.doc.delta(b.doc.versionVector));
    let err: unknown;
    try {
      a.pull(b);
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'CRDT_DOC_TOO_LARGE')).toBe(true);
    expect(encodeDocument(a.doc)).toEqual(bytes);
    expect(a.doc.versionVector).toEqual(vv);
    expect(encodeDelta(a.doc.delta(b.doc.versionVector))).toEqual(fromB);
    // Once a shrinks, the same changes merge and the replicas converge.
    a.write({ kind: 'update', unset: [['m', 'k4'], ['m', 'k5'], ['r']] });
    sync(a, b);
    expect(a.doc.toJSON()).toEqual(b.doc.toJSON());
    expect(encodeDocument(a.doc)).toEqual(encodeDocument(b.doc));
  });
});

describe('patterns from the field', () => {
  it('tasks map with two writers: different tasks and different fields of one task all survive', () => {
    const [a, b] = pair();
    a.set(['tasks'], { t1: { title: 'one', done: false } });
    sync(a, b);
    a.set(['tasks', 't2'], { title: 'two' });
    b.set(['tasks', 't3'], { title: 'three' });
    a.set(['tasks', 't1', 'done'], true);
    b.set(['tasks', 't1', 'title'], 'ONE');
    sync(a, b);
    const expected = {
      t1: { done: true, title: 'ONE' },
      t2: { title: 'two' },
      t3: { title: 'three' },
    };
    expect(a.doc.get(['tasks'])).toEqual(expected);
    expect(b.doc.get(['tasks'])).toEqual(expected);
  });

  it('audit log: every transition survives; latest, most advanced and earliest are derived', () => {
    const [a, b] = pair();
    a.set(['status_log', '2026-11-20T10:00:00.000Z'], 'created');
    a.set(['status_log', '2026-11-20T12:00:00.000Z'], 'shipped');
    b.set(['status_log', '2026-11-20T11:00:00.000Z'], 'packed');
    b.set(['status_log', '2026-11-20T09:00:00.000Z'], 'created');
    sync(a, b);
    const log = a.doc.get(['status_log']) as Record<string, string>;
    expect(b.doc.get(['status_log'])).toEqual(log);
    expect(Object.keys(log)).toHaveLength(4);
    const keys = Object.keys(log).sort();
    expect(log[keys[keys.length - 1] as string]).toBe('shipped'); // latest
    const progression = ['created', 'packed', 'shipped', 'delivered'];
    const mostAdvanced = Object.values(log).reduce((m, s) =>
      progression.indexOf(s) > progression.indexOf(m) ? s : m,
    );
    expect(mostAdvanced).toBe('shipped');
    const earliestCreated = keys.find((k) => log[k] === 'created');
    expect(earliestCreated).toBe('2026-11-20T09:00:00.000Z');
    // Status-keyed variant keeps one timestamp per state.
    a.set(['by_status', 'shipped'], '2026-11-20T12:00:00.000Z');
    b.set(['by_status', 'packed'], '2026-11-20T11:00:00.000Z');
    sync(a, b);
    expect(a.doc.get(['by_status'])).toEqual({
      packed: '2026-11-20T11:00:00.000Z',
      shipped: '2026-11-20T12:00:00.000Z',
    });
  });

  it('UPDATE_LOCAL_DIFF on two devices: both changed fields survive; nothing differs → no mutation', () => {
    const [a, b] = pair();
    const base = { _id: 'doc', title: 'T', assignee: 'ann', meta: { p: 1 } };
    a.insert(base, 'DO_UPDATE');
    sync(a, b);
    a.insert({ ...base, title: 'T2' }, 'DO_UPDATE_LOCAL_DIFF');
    b.wall += 10; // b's full write is later, yet it only writes what differs
    b.insert({ ...base, assignee: 'bob' }, 'DO_UPDATE_LOCAL_DIFF');
    sync(a, b);
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', assignee: 'bob', meta: { p: 1 }, title: 'T2' });
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
    const r = a.write({
      kind: 'insert',
      document: a.doc.toJSON() as Record<string, Value>,
      onConflict: 'DO_UPDATE_LOCAL_DIFF',
    });
    expect(r.changed).toBe(false);
    // Contrast: DO_UPDATE writes every field, so the later full write wins everything.
    const c = new Replica('c');
    sync(c, a);
    a.insert({ ...base, title: 'T3' }, 'DO_UPDATE');
    c.wall += 20;
    c.insert({ ...base, assignee: 'cat' }, 'DO_UPDATE');
    sync(a, c);
    expect(a.doc.get(['title'])).toBe('T');
  });

  it('cart + payments in one document: concurrent additions to either map merge', () => {
    const a = new Replica('a', 'order-1');
    a.insert({ _id: 'order-1', items: { sku1: { qty: 1 } }, payments: {} });
    const b = new Replica('b', 'order-1');
    sync(a, b);
    a.set(['items', 'sku2'], { qty: 2 });
    b.set(['items', 'sku3'], { qty: 1 });
    b.set(['payments', 'pay1'], { amount: 10 });
    a.set(['payments', 'pay2'], { amount: 5 });
    sync(a, b);
    expect(a.doc.toJSON()).toEqual({
      _id: 'order-1',
      items: { sku1: { qty: 1 }, sku2: { qty: 2 }, sku3: { qty: 1 } },
      payments: { pay1: { amount: 10 }, pay2: { amount: 5 } },
    });
    expect(b.doc.toJSON()).toEqual(a.doc.toJSON());
  });

  it('composite _id is compared by value', () => {
    const d1 = CrdtDocument.create({ region: '1', location: '42' });
    const d2 = CrdtDocument.create({ location: '42', region: '1' });
    expect(d1.key).toBe(d2.key);
  });
});

describe('limits on writes', () => {
  it('refuses fields nested deeper than MAX_FIELD_DEPTH and values deeper than MAX_VALUE_DEPTH', async () => {
    const { MAX_FIELD_DEPTH, MAX_VALUE_DEPTH } = await import('@lattice/crdt');
    const a = new Replica('a');
    a.insert({ _id: 'doc' });
    const path = Array.from({ length: MAX_FIELD_DEPTH + 1 }, (_, i) => `k${i}`);
    expect(() => a.set(path, 1)).toThrow(expect.objectContaining({ code: 'CRDT_INVALID_VALUE' }));
    let v: Value = 1;
    for (let i = 0; i <= MAX_VALUE_DEPTH + 1; i++) v = [v];
    expect(() => a.set(['deep'], v)).toThrow(
      expect.objectContaining({ code: 'CRDT_INVALID_VALUE' }),
    );
    expect(() => a.set(['nan'], Number.NaN)).toThrow(
      expect.objectContaining({ code: 'CRDT_INVALID_VALUE' }),
    );
  });
});

describe('typedefs', () => {
  it('fields named like Object.prototype members take their default typing (regression)', () => {
    const a = new Replica('a');
    a.insert({ _id: 'doc' });
    // With typedefs present, `typedefs['constructor']` used to find Object's constructor and the
    // write was silently dropped.
    a.write({
      kind: 'update',
      set: [
        { path: ['constructor'], value: 1 },
        { path: ['toString'], value: { x: 2 } },
      ],
      typedefs: { other: 'COUNTER' },
    });
    expect(a.doc.toJSON()).toEqual({ _id: 'doc', constructor: 1, toString: { x: 2 } });
  });
});
