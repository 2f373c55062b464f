/**
 * The N-replica randomized convergence test (yjs's pattern): 5 replicas write at random while a
 * seeded fake network delivers, drops, duplicates, reorders and disconnects; after healing, every
 * replica must hold the same materialized value, version vector and state bytes.
 */
import { fc } from '@fast-check/vitest';
import { decodeDelta, encodeDelta, mergeEncoded } from '@lattice/crdt';
import type { DocDelta, WriteIntent } from '@lattice/crdt';
import { describe, expect, it } from 'vitest';
import { intentArb, stateOf } from './arbitraries.js';
import { Replica } from './helpers.js';

const N = 5;
const SOAK = Number(process.env.LATTICE_SOAK ?? 0) > 0;
const SEEDS = SOAK ? 2000 : 60;
const STEPS = 250;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Msg {
  readonly to: number;
  readonly from: number;
  readonly bytes: Uint8Array;
}

function simulate(seed: number): Replica[] {
  const rand = rng(seed);
  const pick = (n: number): number => Math.floor(rand() * n);
  const intents = fc.sample(intentArb, { seed, numRuns: STEPS });
  const reps = Array.from(
    { length: N },
    (_, i) => new Replica(`peer-${i}`, 'doc', 1_700_000_000_000 + pick(50)),
  );
  const connected: boolean[][] = reps.map(() => reps.map(() => true));
  let inFlight: Msg[] = [];
  const send = (from: number, to: number, d: DocDelta): void => {
    if (from === to || !(connected[from]?.[to] ?? false)) return;
    inFlight.push({ from, to, bytes: encodeDelta(d) });
  };
  const deliver = (m: Msg): void => {
    const r = reps[m.to] as Replica;
    // Half the replicas merge the bytes as they decode them, half decode first: both converge.
    if (m.to % 2 === 1) mergeEncoded(r.doc, m.bytes, { clock: r.clock });
    else r.doc.merge(decodeDelta(m.bytes), { clock: r.clock });
  };
  for (let step = 0; step < STEPS; step++) {
    const x = rand();
    if (x < 0.35) {
      const i = pick(N);
      const r = reps[i] as Replica;
      r.wall += pick(20);
      const res = r.write(intents[step] as WriteIntent);
      if (res.delta !== undefined) for (let j = 0; j < N; j++) send(i, j, res.delta);
    } else if (x < 0.6 && inFlight.length > 0) {
      const k = pick(inFlight.length); // reorder: any message may go next
      const m = inFlight[k] as Msg;
      inFlight.splice(k, 1);
      if (connected[m.from]?.[m.to] === true) deliver(m);
    } else if (x < 0.67 && inFlight.length > 0) {
      inFlight.splice(pick(inFlight.length), 1); // drop
    } else if (x < 0.72 && inFlight.length > 0) {
      inFlight.push(inFlight[pick(inFlight.length)] as Msg); // duplicate
    } else if (x < 0.77) {
      const i = pick(N);
      const j = pick(N);
      const row = connected[i] as boolean[];
      row[j] = !row[j]; // disconnect / reconnect one direction
      (connected[j] as boolean[])[i] = row[j] as boolean;
    } else {
      // anti-entropy: a delta against the receiver's version vector
      const i = pick(N);
      const j = pick(N);
      send(j, i, (reps[j] as Replica).doc.delta((reps[i] as Replica).doc.versionVector));
    }
  }
  // Heal: reconnect, deliver what is still in flight, then sync until nothing changes.
  for (const row of connected) row.fill(true);
  for (const m of inFlight) deliver(m);
  inFlight = [];
  for (let round = 0; round < 3; round++) {
    for (const a of reps) for (const b of reps) if (a !== b) a.pull(b);
  }
  return reps;
}

describe('5-replica randomized convergence', () => {
  it(`converges after healing, over ${SEEDS} seeds`, { timeout: SOAK ? 3_600_000 : 60_000 }, () => {
    let nonTrivial = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const reps = simulate(seed);
      const first = reps[0] as Replica;
      const json = first.doc.toJSON();
      const vv = [...first.doc.versionVector].sort();
      const state = stateOf(first.doc);
      if (first.doc.versionVector.size >= 3) nonTrivial++;
      for (const r of reps.slice(1)) {
        expect(r.doc.toJSON(), `seed ${seed}, ${r.name}`).toEqual(json);
        expect([...r.doc.versionVector].sort(), `seed ${seed}, ${r.name}`).toEqual(vv);
        expect(stateOf(r.doc), `seed ${seed}, ${r.name}`).toBe(state);
      }
    }
    // The scenario must exercise concurrency: most runs have writes from several peers.
    expect(nonTrivial).toBeGreaterThan(SEEDS / 2);
  });
});
