/**
 * `@lattice/merge/testing`: a seeded simulator of N peers running the real merge engine and
 * store (memory engine) over simulated links, and the checks that end every run.
 *
 * @remarks
 * It lives here rather than in `packages/testing` because it runs the merge and store packages,
 * which depend on `packages/testing` for their own tests (a cycle otherwise).
 *
 * The simulated network delivers whole sync messages over per-pair channels in simulated ticks:
 * each message waits a seeded latency, links flap (the channel closes mid-transfer and reconnects
 * later), partitions cut groups of peers apart, and peers restart (their engine closes and
 * reopens on the same store, so checkpoints, clock and subscriptions come back from it). The
 * sync session assumes an ordered, reliable channel, so message loss, duplication and reordering
 * belong to the multiplexer below it (its own property tests cover them), not to this layer.
 * Each run heals, waits until nothing moves, and checks convergence, that every acknowledged write
 * is present (set checker), and that nothing reached a peer that did not subscribe to it.
 *
 * With `restrictedLeaves`, some leaves of a star sync with the hub as restricted principals (as
 * an app behind the gateway's sync endpoint): each may read the hub's documents and its own, and
 * write only its own. Their edits of the hub's documents stay on them; the checks then also say
 * that nothing outside its read permission reached such a leaf, that its own documents
 * converged, and that none of its refused edits reached anyone else.
 */
import { compilePermissions } from '@lattice/dql';
import type { Permissions } from '@lattice/dql';
import { seededRandom } from '@lattice/multiplexer';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { InboxChannel } from './channel.js';
import { MergeEngine } from './engine.js';
import { restartOf } from './session.js';

/** Shape of the mesh. */
export type Topology = 'line' | 'star' | 'mesh';

/** Options of {@link simulate}. */
export interface SimulationOptions {
  readonly seed: number;
  readonly peers: number;
  readonly topology: Topology;
  /** Ticks of random activity before healing (default 200). */
  readonly ticks?: number;
  /** Per tick: chance of a write on a random peer (default 0.5). */
  readonly writeRate?: number;
  /** Per tick and link: chance the link flaps (default 0.01). */
  readonly flapRate?: number;
  /** Per tick: chance a random peer restarts (default 0.005). */
  readonly restartRate?: number;
  /** Per tick: chance a partition starts or ends (default 0.01). */
  readonly partitionRate?: number;
  /** Most ticks a message waits on a link (default 3). */
  readonly maxLatency?: number;
  /** Every third peer subscribes only to the documents of its own shard. */
  readonly partialSubscribers?: boolean;
  /**
   * In a star, every third leaf (1, 4, 7, …) is restricted by the hub: it may read the hub's
   * documents and its own, and write only its own.
   */
  readonly restrictedLeaves?: boolean;
  /**
   * Per tick and link: chance that one side's session starts over while the other side's goes on
   * (default 0), as when a merge service's bus feed from its multiplexer had a gap: what was on
   * its way to that side is lost, and so is what arrives within the tick, before the new session
   * listens; and a new link may lose what first reaches one side (the other side's hello, say).
   * The sessions must find each other again.
   */
  readonly resetRate?: number;
}

/** What a run did and found. */
export interface SimulationReport {
  readonly seed: number;
  readonly writes: number;
  readonly flaps: number;
  readonly restarts: number;
  readonly partitions: number;
  readonly bytes: number;
  readonly messages: number;
  /** One-sided session restarts ({@link SimulationOptions.resetRate}). */
  readonly resets: number;
  /** Messages those lost. */
  readonly lost: number;
  /** Problems found; empty when the run passed. */
  readonly violations: string[];
}

interface SimLink {
  readonly a: number;
  readonly b: number;
  up: boolean;
  queues: [{ at: number; m: Uint8Array }[], { at: number; m: Uint8Array }[]];
  ends?: [InboxChannel, InboxChannel];
  sessions?: Promise<unknown>;
  /** Per side: messages toward it are lost until this tick (its session is starting over). */
  deaf: [number, number];
}

const COLLECTION = 'items';

/** Lets every pending promise, microtask and immediate run (the simulator's "settle"). */
async function drain(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Runs one seeded simulation; see the module comment. */
export async function simulate(options: SimulationOptions): Promise<SimulationReport> {
  const random = seededRandom(options.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const n = options.peers;
  const ticks = options.ticks ?? 200;
  const names = Array.from({ length: n }, (_, i) => `peer${i}`);
  let tick = 0;
  const wall = (): number => 1_700_000_000_000 + tick * 10;
  const engines: (MergeEngine | undefined)[] = [];
  const storage = names.map(() => new MemoryEngine());
  // Partial subscribers store (and so relay) only their shard: they sit where no other peer's
  // data must pass through them (leaves of a star, the end of a line).
  const partial = names.map(
    (_, i) =>
      options.partialSubscribers === true &&
      i % 3 === 2 &&
      (options.topology === 'star' || (options.topology === 'line' && i === n - 1)),
  );
  // Restricted leaves, and what the hub (peer 0) lets each read and write.
  const restricted = names.map(
    (_, i) => options.restrictedLeaves === true && options.topology === 'star' && i % 3 === 1,
  );
  const permissionsOf = (i: number): Permissions =>
    compilePermissions({
      read: {
        queriesByCollection: { [COLLECTION]: [`_id LIKE 'peer0-%'`, `_id LIKE 'peer${i}-%'`] },
      },
      write: { queriesByCollection: { [COLLECTION]: [`_id LIKE 'peer${i}-%'`] } },
    });
  const ownedBy = (i: number, id: string): boolean => id.startsWith(`${names[i]}-`);
  const report = {
    writes: 0,
    flaps: 0,
    restarts: 0,
    partitions: 0,
    bytes: 0,
    messages: 0,
    resets: 0,
    lost: 0,
  };
  const violations: string[] = [];

  // Timers run on the simulated clock: due at a wall time, fired as the ticks pass it.
  const timers = new Set<{ readonly due: number; readonly fn: () => void }>();
  const setTimer = (ms: number, fn: () => void): (() => void) => {
    const t = { due: wall() + ms, fn };
    timers.add(t);
    return () => timers.delete(t);
  };
  const fireTimers = (): void => {
    for (const t of [...timers]) {
      if (t.due > wall()) continue;
      timers.delete(t);
      t.fn();
    }
  };

  const generation = names.map(() => 0);
  const start = async (i: number): Promise<MergeEngine> => {
    const store = await DocumentStore.open(storage[i] as MemoryEngine, { sync: false });
    let ids = 0;
    const gen = generation[i] ?? 0;
    generation[i] = gen + 1;
    const e = MergeEngine.open({
      peerId: names[i] as string,
      store,
      now: wall,
      newId: () => `${names[i]}-${gen}-${ids++}`,
      setTimer,
      session: { batchSize: 20, window: 3, helloRetryMs: 50 },
    });
    if (e.subscriptions.length === 0) {
      await e.subscribe(
        partial[i] ? `SELECT * FROM ${COLLECTION} WHERE shard = :s` : `SELECT * FROM ${COLLECTION}`,
        partial[i] ? { s: i % 2 } : {},
      );
    }
    engines[i] = e;
    return e;
  };
  for (let i = 0; i < n; i++) await start(i);

  // Topology.
  const links: SimLink[] = [];
  const add = (a: number, b: number): void => {
    links.push({ a, b, up: false, queues: [[], []], deaf: [0, 0] });
  };
  if (options.topology === 'line') for (let i = 0; i + 1 < n; i++) add(i, i + 1);
  else if (options.topology === 'star') for (let i = 1; i < n; i++) add(0, i);
  else {
    for (let i = 1; i < n; i++) add(Math.floor(random() * i), i); // a random spanning tree …
    for (let k = 0; k < n; k++) {
      const a = Math.floor(random() * n);
      const b = Math.floor(random() * n);
      if (a !== b && !links.some((l) => (l.a === a && l.b === b) || (l.a === b && l.b === a)))
        add(a, b); // … plus chords
    }
  }
  let partitioned: Set<number> | undefined;
  const cut = (l: SimLink): boolean =>
    partitioned !== undefined && partitioned.has(l.a) !== partitioned.has(l.b);

  const latency = (): number => tick + 1 + Math.floor(random() * (options.maxLatency ?? 3));
  /**
   * Runs side `side` of link `l` (0: peer `a`, 1: peer `b`) on a new channel end: `first` is
   * delivered before anything else, `sessionId` kept (a session that replaces one the remote
   * restarted, as `syncOverMultiplexer` does).
   */
  const runSide = (
    l: SimLink,
    side: 0 | 1,
    first: readonly Uint8Array[] = [],
    sessionId?: Uint8Array,
  ): Promise<void> => {
    const [self, other] = side === 0 ? [l.a, l.b] : [l.b, l.a];
    const e = engines[self];
    if (!e || !l.ends) return Promise.resolve();
    const end: InboxChannel = new InboxChannel(
      (m) => {
        report.bytes += m.length;
        report.messages++;
        l.queues[side === 0 ? 1 : 0].push({ at: latency(), m });
      },
      // Only the current end of a side takes the link down when its session ends.
      () => {
        if (l.ends?.[side] === end) disconnect(l);
      },
    );
    l.ends[side] = end;
    for (const m of first) end.deliver(m);
    // In a star the hub is always `a` (links are added as (0, i)).
    const permissions = side === 0 && l.a === 0 && restricted[l.b] ? permissionsOf(l.b) : undefined;
    return e.connect(names[other] as string, end, { permissions, sessionId }).catch((err) => {
      const restart = restartOf(err);
      if (!restart) throw err;
      // The remote started over: so does this side, under the same session id (unless the link
      // or this end is gone meanwhile).
      if (l.up && l.ends?.[side] === end)
        return runSide(l, side, [restart.hello, ...end.takeUnread()], restart.sessionId);
      return undefined;
    });
  };
  const connect = (l: SimLink): void => {
    const ea = engines[l.a];
    const eb = engines[l.b];
    if (!ea || !eb || l.up || cut(l)) return;
    l.up = true;
    l.queues = [[], []];
    l.deaf = [0, 0];
    // With resets, a new link may also lose what first reaches one side (its merge service's feed
    // had not caught up): the other side's hello, say.
    if ((options.resetRate ?? 0) > 0 && random() < 0.3) l.deaf[random() < 0.5 ? 0 : 1] = tick + 3;
    const placeholder = new InboxChannel(() => undefined);
    l.ends = [placeholder, placeholder];
    l.sessions = Promise.allSettled([runSide(l, 0), runSide(l, 1)]).then((rs) => {
      for (const r of rs) {
        if (r.status !== 'rejected') continue;
        const code = (r.reason as { code?: string }).code;
        // The previous session on this link was still winding down: try again later.
        if (code === 'MERGE_SESSION_EXISTS') disconnect(l);
        else if (code !== 'MERGE_CLOSED' && code !== 'MERGE_CHANNEL_CLOSED')
          violations.push(`session ${names[l.a]}–${names[l.b]} failed: ${String(r.reason)}`);
      }
    });
  };
  /**
   * One side's session starts over, the other's goes on: what was on its way to that side is
   * lost, and so is what arrives before the new session listens.
   */
  const resetSide = async (l: SimLink, side: 0 | 1): Promise<void> => {
    const self = side === 0 ? l.a : l.b;
    const other = side === 0 ? l.b : l.a;
    const e = engines[self];
    if (!e || !l.up || !l.ends) return;
    report.resets++;
    report.lost += l.queues[side].length;
    l.queues[side] = [];
    l.deaf[side] = tick + (random() < 0.5 ? 1 : 0);
    const old = l.ends[side];
    const placeholder = new InboxChannel(() => undefined);
    l.ends[side] = placeholder; // the old end's close must not take the link down
    old.close();
    await e.disconnect(names[other] as string);
    if (!l.up || l.ends[side] !== placeholder) return;
    runSide(l, side).catch((err: unknown) => {
      const code = (err as { code?: string }).code;
      if (
        code !== 'MERGE_CLOSED' &&
        code !== 'MERGE_CHANNEL_CLOSED' &&
        code !== 'MERGE_SESSION_EXISTS'
      )
        violations.push(`session ${names[self]}→${names[other]} failed: ${String(err)}`);
    });
  };
  const disconnect = (l: SimLink): void => {
    if (!l.up) return;
    l.up = false;
    l.ends?.[0].close();
    l.ends?.[1].close();
  };
  const deliver = (): void => {
    for (const l of links) {
      if (!l.up || !l.ends) continue;
      for (const side of [0, 1] as const) {
        // Ordered: deliver the head while it is due.
        const q = l.queues[side];
        while (q.length > 0 && (q[0] as { at: number }).at <= tick) {
          const m = (q.shift() as { m: Uint8Array }).m;
          if (tick < l.deaf[side]) report.lost++;
          else l.ends[side].deliver(m);
        }
      }
    }
  };

  // What must survive: acknowledged inserts and map-key writes (set checker).
  const ackedInserts = new Set<string>();
  const ackedKeys = new Map<string, Set<string>>();
  const deleted = new Set<string>();

  const write = async (i: number): Promise<void> => {
    const e = engines[i];
    if (!e) return;
    const existing = e.store.select(`SELECT _id FROM ${COLLECTION}`) as { _id: string }[];
    const r = random();
    try {
      if (r < 0.4 || existing.length === 0) {
        const res = await e.execute(`INSERT INTO ${COLLECTION} DOCUMENTS (:d)`, {
          d: { shard: Math.floor(random() * 2), marks: {} },
        });
        for (const id of res.mutatedIds) ackedInserts.add(id as string);
      } else if (r < 0.95) {
        const id = pick(existing)._id;
        const key = `${names[i]}_${report.writes}`;
        const res = await e.execute(`UPDATE ${COLLECTION} SET marks.${key} = :v WHERE _id = :id`, {
          v: tick,
          id,
        });
        // A restricted leaf's edit of a document it may not write stays on it.
        if (res.mutatedIds.length > 0 && (!restricted[i] || ownedBy(i, id))) {
          const set = ackedKeys.get(id) ?? new Set<string>();
          set.add(key);
          ackedKeys.set(id, set);
        }
      } else {
        const id = pick(existing)._id;
        const res = await e.execute(`DELETE FROM ${COLLECTION} WHERE _id = :id`, { id });
        for (const d of res.mutatedIds) {
          if (!restricted[i] || ownedBy(i, d as string)) deleted.add(d as string);
        }
      }
      report.writes++;
    } catch (err) {
      if ((err as { code?: string }).code !== 'MERGE_CLOSED')
        violations.push(`write on ${names[i]} failed: ${String(err)}`);
    }
  };

  for (const l of links) connect(l);
  const pending: Promise<void>[] = [];
  for (tick = 1; tick <= ticks; tick++) {
    if (random() < (options.writeRate ?? 0.5)) pending.push(write(Math.floor(random() * n)));
    for (const l of links) {
      if (l.up && random() < (options.flapRate ?? 0.01)) {
        report.flaps++;
        disconnect(l);
      } else if (!l.up && random() < 0.2) connect(l);
    }
    for (const l of links) {
      if (l.up && random() < (options.resetRate ?? 0))
        pending.push(resetSide(l, random() < 0.5 ? 0 : 1));
    }
    if (random() < (options.partitionRate ?? 0.01)) {
      if (partitioned) partitioned = undefined;
      else {
        report.partitions++;
        partitioned = new Set(names.map((_, i) => i).filter(() => random() < 0.5));
        for (const l of links) if (cut(l)) disconnect(l);
      }
    }
    if (random() < (options.restartRate ?? 0.005)) {
      const i = Math.floor(random() * n);
      const e = engines[i];
      if (e) {
        report.restarts++;
        engines[i] = undefined;
        for (const l of links) if (l.a === i || l.b === i) disconnect(l);
        await Promise.allSettled(pending.splice(0));
        await e.close();
        await e.store.close();
        await start(i);
      }
    }
    deliver();
    fireTimers();
    await drain();
  }

  // Heal: no partition, every link up, deliver until nothing moves.
  partitioned = undefined;
  await Promise.allSettled(pending.splice(0));
  for (const l of links) connect(l);
  let quiet = 0;
  for (let guard = 0; guard < 20_000 && quiet < 20; guard++) {
    tick++;
    const before = report.messages;
    for (const l of links) if (!l.up) connect(l); // a reconnect may have raced a closing session
    deliver();
    fireTimers();
    await drain();
    // A pending timer is a session still waiting for its handshake: not quiet yet.
    const busy =
      timers.size > 0 || links.some((l) => !l.up || l.queues[0].length + l.queues[1].length > 0);
    quiet = !busy && report.messages === before ? quiet + 1 : 0;
  }
  if (quiet < 20) {
    violations.push('the network never went quiet after healing');
    if (process.env['LATTICE_SIM_DEBUG']) {
      for (const l of links) if (!l.up) console.error('down link', names[l.a], names[l.b]);
      engines.forEach((e) =>
        console.error(
          e?.peerId,
          JSON.stringify(e?.syncStatus().map((x) => [x.remotePeer, x.state])),
        ),
      );
    }
  }

  // Checks.
  const full = engines.filter((_, i) => !partial[i] && !restricted[i]) as MergeEngine[];
  const docsOf = (e: MergeEngine): Map<string, Record<string, unknown>> =>
    new Map(
      (e.store.select(`SELECT * FROM ${COLLECTION}`) as Record<string, unknown>[]).map((d) => [
        d['_id'] as string,
        d,
      ]),
    );
  const reference = full[0] ? docsOf(full[0]) : new Map<string, Record<string, unknown>>();
  const refJson = JSON.stringify([...reference.entries()]);
  for (const e of full.slice(1)) {
    if (JSON.stringify([...docsOf(e).entries()]) !== refJson)
      violations.push(`${e.peerId} diverged from ${full[0]?.peerId}`);
  }
  for (const id of ackedInserts) {
    if (!deleted.has(id) && !reference.has(id))
      violations.push(`acknowledged insert ${id} is lost`);
  }
  for (const [id, keys] of ackedKeys) {
    const doc = reference.get(id);
    // A deleted document keeps only the updates concurrent with the delete (a husk).
    if (!doc || deleted.has(id)) continue;
    const marks = (doc['marks'] ?? {}) as Record<string, unknown>;
    for (const k of keys)
      if (!(k in marks)) violations.push(`acknowledged write ${id}.marks.${k} is lost`);
  }
  engines.forEach((e, i) => {
    if (!e || !partial[i]) return;
    const shard = i % 2;
    const mine = docsOf(e);
    for (const [id, doc] of reference) {
      if (doc['shard'] === shard && JSON.stringify(mine.get(id)) !== JSON.stringify(doc)) {
        violations.push(`${e.peerId} lacks or differs on ${id} of its shard`);
      }
    }
    for (const [id, doc] of mine) {
      const local = e.store.get(COLLECTION, [id])[0]?.versionVector.has(e.peerId) === true;
      // A husk (a delete merged with a concurrent update) has lost its shard field; what it
      // held when it arrived matched, or the checks above would have failed for it.
      if (doc['shard'] !== undefined && doc['shard'] !== shard && !local) {
        violations.push(
          `${e.peerId} received ${id} outside its subscription (${JSON.stringify(doc)})`,
        );
      }
    }
  });

  engines.forEach((e, i) => {
    if (!e || !restricted[i]) return;
    const mine = docsOf(e);
    for (const id of mine.keys()) {
      if (!ownedBy(i, id) && !ownedBy(0, id)) {
        violations.push(`${e.peerId} received ${id} outside its read permission`);
      }
    }
    for (const [id, doc] of reference) {
      if (ownedBy(i, id) && JSON.stringify(mine.get(id)) !== JSON.stringify(doc)) {
        violations.push(`${e.peerId} lacks or differs on its own ${id}`);
      }
    }
    // Its edits of documents it may not write reached no one: their mark keys are its own.
    for (const [id, doc] of reference) {
      if (ownedBy(i, id)) continue;
      for (const k of Object.keys((doc['marks'] ?? {}) as Record<string, unknown>)) {
        if (k.startsWith(`${names[i]}_`)) {
          violations.push(`${e.peerId}'s refused edit ${id}.marks.${k} reached the hub`);
        }
      }
    }
  });

  for (const l of links) disconnect(l);
  await Promise.allSettled(links.flatMap((l) => (l.sessions ? [l.sessions] : [])));
  for (const e of engines) {
    await e?.close();
    await e?.store.close();
  }
  return { seed: options.seed, ...report, violations };
}
