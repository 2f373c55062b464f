import { fc } from '@fast-check/vitest';
import { encodeDelta } from '@lattice/crdt';
import type { CrdtDocument, Path, Value, WriteIntent } from '@lattice/crdt';
import { Replica } from './helpers.js';

const key = fc.constantFrom('a', 'b', 'c');
export const pathArb: fc.Arbitrary<Path> = fc.array(key, { minLength: 1, maxLength: 3 });
const scalar: fc.Arbitrary<Value> = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom('x', 'y', null, true),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
export const valueArb: fc.Arbitrary<Value> = fc.oneof(
  scalar,
  fc.array(scalar, { maxLength: 2 }),
  fc.dictionary(key, scalar, { maxKeys: 2 }),
  fc.dictionary(key, fc.dictionary(key, scalar, { maxKeys: 2 }), { maxKeys: 2 }),
  fc.uint8Array({ maxLength: 3 }),
);

export type Step =
  | { readonly t: 'write'; readonly r: number; readonly intent: WriteIntent; readonly tick: number }
  | { readonly t: 'pull'; readonly r: number; readonly from: number };

export const intentArb: fc.Arbitrary<WriteIntent> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record({ path: pathArb, value: valueArb })
      .map((s): WriteIntent => ({ kind: 'update', set: [s] })),
  },
  { weight: 2, arbitrary: pathArb.map((p): WriteIntent => ({ kind: 'update', unset: [p] })) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        path: pathArb,
        op: fc.constantFrom('INCREMENT' as const, 'RESTART' as const),
        n: fc.integer({ min: -3, max: 3 }),
      })
      .map((x): WriteIntent =>
        x.op === 'RESTART'
          ? { kind: 'update', apply: [{ op: 'RESTART', path: x.path, with: x.n }] }
          : { kind: 'update', apply: [{ op: 'INCREMENT', path: x.path, by: x.n }] },
      ),
  },
  { weight: 1, arbitrary: fc.constant<WriteIntent>({ kind: 'delete' }) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        fields: fc.dictionary(key, valueArb, { maxKeys: 3 }),
        mode: fc.constantFrom(
          'DO_NOTHING' as const,
          'DO_UPDATE' as const,
          'DO_UPDATE_LOCAL_DIFF' as const,
        ),
        initial: fc.boolean(),
      })
      .map((x): WriteIntent => ({
        kind: 'insert',
        document: { ...x.fields, _id: 'doc' },
        onConflict: x.mode,
        initial: x.initial,
      })),
  },
);

export function stepsArb(replicas: number, maxSteps = 25): fc.Arbitrary<Step[]> {
  const r = fc.integer({ min: 0, max: replicas - 1 });
  return fc.array(
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          t: fc.constant('write' as const),
          r,
          intent: intentArb,
          tick: fc.integer({ min: -3, max: 5 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('pull' as const), r, from: r }) },
    ),
    { maxLength: maxSteps },
  );
}

/** Runs steps on fresh replicas (pulls are deltas against the receiver's version vector). */
export function run(steps: readonly Step[], n: number): Replica[] {
  const reps = Array.from({ length: n }, (_, i) => new Replica(`p${i}`));
  for (const s of steps) {
    if (s.t === 'write') {
      const rep = reps[s.r] as Replica;
      rep.wall += s.tick;
      rep.write(s.intent);
    } else if (s.r !== s.from) {
      (reps[s.r] as Replica).pull(reps[s.from] as Replica);
    }
  }
  return reps;
}

/** Canonical bytes of a document's whole state (including its version vector), as hex. */
export function stateOf(doc: CrdtDocument): string {
  return Buffer.from(encodeDelta(doc.snapshot())).toString('hex');
}

/** A copy with `other`'s full state merged in. */
export function merged(doc: CrdtDocument, other: CrdtDocument): CrdtDocument {
  const d = doc.clone();
  d.merge(other.snapshot());
  return d;
}
