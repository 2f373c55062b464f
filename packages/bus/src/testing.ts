/**
 * The bus contract suite: every `Bus` implementation runs it (`runBusContractTests`), so
 * `LocalBus` and `NatsBus` are proven to behave the same.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasCode, LatticeError } from '@lattice/errors';
import { serve } from './serve.js';
import type { Bus, BusMessage, BusStatus, Subscription } from './types.js';

/** What a contract run needs: two clients of one bus (the same object for an in-process bus). */
export interface BusFixture {
  readonly a: Bus;
  readonly b: Bus;
  close(): Promise<void>;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

async function take(sub: Subscription, n: number, timeoutMs = 5_000): Promise<BusMessage[]> {
  const out: BusMessage[] = [];
  const iterator = sub[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`got ${out.length} of ${n} messages on ${sub.subject}`);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      iterator.next(),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), left);
      }),
    ]);
    clearTimeout(timer);
    if (result === 'timeout')
      throw new Error(`got ${out.length} of ${n} messages on ${sub.subject}`);
    if (result.done === true) break;
    out.push(result.value);
  }
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<LatticeError> {
  try {
    await promise;
  } catch (error) {
    if (hasCode(error)) return error as LatticeError;
    throw error;
  }
  throw new Error('expected the promise to reject');
}

let counter = 0;

/** Runs the bus contract against the implementation `connect` builds. */
export function runBusContractTests(name: string, connect: () => Promise<BusFixture>): void {
  describe(`Bus contract: ${name}`, () => {
    let fx: BusFixture;
    let ns: string;
    const subject = (s: string): string => `lattice.${ns}.${s}`;

    beforeEach(async () => {
      fx = await connect();
      ns = `contract${process.pid}x${++counter}x${Math.random().toString(36).slice(2, 8)}`;
    });
    afterEach(async () => {
      await fx.close();
    });

    it('delivers payload and headers in publish order', async () => {
      const sub = fx.b.subscribe(subject('ordered'));
      await fx.b.flush();
      for (let i = 0; i < 50; i++)
        fx.a.publish(subject('ordered'), text(`m${i}`), { headers: { 'x-seq': String(i) } });
      const got = await take(sub, 50);
      expect(got.map((m) => str(m.data))).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
      expect(got.map((m) => m.headers['x-seq'])).toEqual(
        Array.from({ length: 50 }, (_, i) => String(i)),
      );
      expect(got[0]?.subject).toBe(subject('ordered'));
      sub.unsubscribe();
    });

    it('copies payloads: a publisher may reuse its buffer', async () => {
      const sub = fx.b.subscribe(subject('copy'));
      await fx.b.flush();
      const buf = text('first');
      fx.a.publish(subject('copy'), buf);
      buf.set(text('XXXXX'));
      const [m] = await take(sub, 1);
      expect(str(m?.data ?? new Uint8Array())).toBe('first');
      sub.unsubscribe();
    });

    it('matches * to one token and > to one or more', async () => {
      const star = fx.b.subscribe(subject('w.*.end'));
      const tail = fx.b.subscribe(subject('w.>'));
      await fx.b.flush();
      fx.a.publish(subject('w.x.end'), text('1'));
      fx.a.publish(subject('w.x.y.end'), text('2'));
      fx.a.publish(subject('w'), text('3'));
      const fromTail = await take(tail, 2);
      expect(fromTail.map((m) => str(m.data))).toEqual(['1', '2']);
      const fromStar = await take(star, 1);
      expect(str(fromStar[0]?.data ?? new Uint8Array())).toBe('1');
      await fx.a.flush();
      expect(star.pending).toBe(0);
      expect(tail.pending).toBe(0);
      star.unsubscribe();
      tail.unsubscribe();
    });

    it('gives each queue group one copy and plain subscribers all', async () => {
      const q1 = fx.b.subscribe(subject('q'), { queue: 'workers' });
      const q2 = fx.b.subscribe(subject('q'), { queue: 'workers' });
      const all = fx.b.subscribe(subject('q'));
      await fx.b.flush();
      for (let i = 0; i < 40; i++) fx.a.publish(subject('q'), text(String(i)));
      await take(all, 40);
      await fx.a.flush();
      await fx.b.flush();
      const deadline = Date.now() + 5_000;
      while (q1.pending + q2.pending < 40 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(q1.pending + q2.pending).toBe(40);
      q1.unsubscribe();
      q2.unsubscribe();
      all.unsubscribe();
    });

    it('answers requests through serve(), with headers both ways', async () => {
      const server = serve(
        fx.b,
        subject('echo'),
        (req) => text(`${str(req.data)}|${req.headers['x-who'] ?? ''}`),
        { service: 'test' },
      );
      await fx.b.flush();
      const reply = await fx.a.request(subject('echo'), text('hi'), { headers: { 'x-who': 'a' } });
      expect(str(reply.data)).toBe('hi|a');
      await server.stop();
    });

    it('rebuilds a remote error with its code, kind, details and service', async () => {
      const server = serve(
        fx.b,
        subject('fail'),
        () => {
          throw new LatticeError('STORE_NOT_FOUND', 'no document x', {
            kind: 'NOT_FOUND',
            details: { id: 'x' },
          });
        },
        { service: 'store' },
      );
      await fx.b.flush();
      const error = await rejection(fx.a.request(subject('fail'), text('')));
      expect(error.code).toBe('STORE_NOT_FOUND');
      expect(error.kind).toBe('NOT_FOUND');
      expect(error.details).toEqual({ id: 'x' });
      expect(error.message).toBe('no document x');
      expect(error.service).toBe('store');
      await server.stop();
    });

    it('turns a handler crash into BUS_HANDLER_FAILED, not text', async () => {
      const server = serve(
        fx.b,
        subject('crash'),
        () => {
          throw new TypeError('boom');
        },
        { service: 'merge' },
      );
      await fx.b.flush();
      const error = await rejection(fx.a.request(subject('crash'), text('')));
      expect(error.code).toBe('BUS_HANDLER_FAILED');
      expect(error.kind).toBe('INTERNAL');
      expect(error.service).toBe('merge');
      await server.stop();
    });

    it('fails with BUS_NO_RESPONDERS when nobody listens', async () => {
      const error = await rejection(
        fx.a.request(subject('nobody'), text(''), { timeoutMs: 2_000 }),
      );
      expect(error.code).toBe('BUS_NO_RESPONDERS');
    });

    it('fails with BUS_TIMEOUT at the deadline', async () => {
      const sub = fx.b.subscribe(subject('silent'));
      await fx.b.flush();
      const started = Date.now();
      const error = await rejection(fx.a.request(subject('silent'), text(''), { timeoutMs: 150 }));
      expect(error.code).toBe('BUS_TIMEOUT');
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(Date.now() - started).toBeLessThan(2_000);
      sub.unsubscribe();
    });

    it('fails with BUS_CANCELLED when the signal aborts', async () => {
      const sub = fx.b.subscribe(subject('slow'));
      await fx.b.flush();
      const controller = new AbortController();
      const pending = fx.a.request(subject('slow'), text(''), {
        signal: controller.signal,
        timeoutMs: 5_000,
      });
      setTimeout(() => controller.abort(), 20);
      expect((await rejection(pending)).code).toBe('BUS_CANCELLED');
      const aborted = AbortSignal.abort();
      expect(
        (await rejection(fx.a.request(subject('slow'), text(''), { signal: aborted }))).code,
      ).toBe('BUS_CANCELLED');
      sub.unsubscribe();
    });

    it('gives the handler the deadline and aborts its signal when it passes', async () => {
      let seen: { deadline: number | undefined; aborted: boolean } | undefined;
      const server = serve(
        fx.b,
        subject('deadline'),
        async (_req, ctx) => {
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
          );
          seen = { deadline: ctx.deadline, aborted: ctx.signal.aborted };
          return text('late');
        },
        { service: 'test' },
      );
      await fx.b.flush();
      const deadline = Date.now() + 200;
      const error = await rejection(fx.a.request(subject('deadline'), text(''), { deadline }));
      expect(error.code).toBe('BUS_TIMEOUT');
      await server.stop();
      expect(seen?.deadline).toBe(deadline);
      expect(seen?.aborted).toBe(true);
    });

    it('refuses requests larger than the server allows, with a typed error', async () => {
      const server = serve(fx.b, subject('small'), () => text('ok'), {
        service: 'test',
        maxRequestBytes: 16,
      });
      await fx.b.flush();
      const error = await rejection(fx.a.request(subject('small'), new Uint8Array(17)));
      expect(error.code).toBe('BUS_PAYLOAD_TOO_LARGE');
      expect(str((await fx.a.request(subject('small'), new Uint8Array(16))).data)).toBe('ok');
      await server.stop();
    });

    it('refuses payloads above the bus maximum (1 MiB) with BUS_PAYLOAD_TOO_LARGE', () => {
      expect(() => fx.a.publish(subject('huge'), new Uint8Array(2 * 1024 * 1024))).toThrow(
        expect.objectContaining({ code: 'BUS_PAYLOAD_TOO_LARGE' }),
      );
    });

    it('refuses invalid subjects and queue names', () => {
      expect(() => fx.a.publish('a..b', text(''))).toThrow(
        expect.objectContaining({ code: 'BUS_INVALID_SUBJECT' }),
      );
      expect(() => fx.a.publish('a.*', text(''))).toThrow(
        expect.objectContaining({ code: 'BUS_INVALID_SUBJECT' }),
      );
      expect(() => fx.a.subscribe('a.>.b')).toThrow(
        expect.objectContaining({ code: 'BUS_INVALID_SUBJECT' }),
      );
      expect(() => fx.a.subscribe('a', { queue: 'x y' })).toThrow(
        expect.objectContaining({ code: 'BUS_INVALID_SUBJECT' }),
      );
    });

    it('does not lose messages silently when a subscriber falls behind: drops are counted and reported', async () => {
      const statuses: BusStatus[] = [];
      const statusIterator = fx.b.status()[Symbol.asyncIterator]();
      const collecting = (async () => {
        for (;;) {
          const r = await statusIterator.next();
          if (r.done === true) return;
          statuses.push(r.value);
          if (r.value.type === 'slow_consumer') return;
        }
      })();
      const sub = fx.b.subscribe(subject('slowsub'), { maxPending: 10 });
      await fx.b.flush();
      for (let i = 0; i < 100; i++) fx.a.publish(subject('slowsub'), text(String(i)));
      await fx.a.flush();
      const deadline = Date.now() + 5_000;
      while (sub.pending + sub.dropped < 100 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(sub.pending).toBe(10);
      expect(sub.dropped).toBe(90);
      await collecting;
      expect(statuses.at(-1)).toMatchObject({
        type: 'slow_consumer',
        subject: subject('slowsub'),
        dropped: 1,
      });
      const kept = await take(sub, 10);
      expect(kept.map((m) => str(m.data))).toEqual([
        '0',
        '1',
        '2',
        '3',
        '4',
        '5',
        '6',
        '7',
        '8',
        '9',
      ]);
      sub.unsubscribe();
      await statusIterator.return?.();
    });

    it('limits concurrent handlers and drains in-flight requests on stop', async () => {
      let running = 0;
      let maxRunning = 0;
      const release: (() => void)[] = [];
      const server = serve(
        fx.b,
        subject('drain'),
        async (req) => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await new Promise<void>((resolve) => release.push(resolve));
          running--;
          return req.data;
        },
        { service: 'test', maxConcurrent: 2 },
      );
      await fx.b.flush();
      const replies = [1, 2, 3].map((i) =>
        fx.a.request(subject('drain'), text(String(i)), { timeoutMs: 5_000 }),
      );
      const deadline = Date.now() + 5_000;
      while (release.length < 2 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
      expect(server.inFlight).toBe(2);
      const stopping = server.stop();
      while (release.length > 0 || server.inFlight > 0) {
        release.shift()?.();
        await new Promise((r) => setTimeout(r, 5));
      }
      await stopping;
      expect(maxRunning).toBe(2);
      const settled = await Promise.allSettled(replies);
      // Requests already taken were answered; the one still queued is answered too or times out,
      // never answered twice.
      expect(settled.filter((s) => s.status === 'fulfilled').length).toBeGreaterThanOrEqual(2);
      const error = await rejection(
        fx.a.request(subject('drain'), text('late'), { timeoutMs: 1_000 }),
      );
      expect(['BUS_NO_RESPONDERS', 'BUS_TIMEOUT']).toContain(error.code);
    });

    it('ends subscription iterators on unsubscribe and refuses use after close', async () => {
      const sub = fx.b.subscribe(subject('end'));
      const iterating = (async () => {
        let n = 0;
        for await (const _ of sub) n++;
        return n;
      })();
      await fx.b.flush();
      fx.a.publish(subject('end'), text('x'));
      await fx.a.flush();
      await take(fx.b.subscribe(subject('end')), 0);
      sub.unsubscribe();
      expect(await iterating).toBeLessThanOrEqual(1);
      expect(sub.isClosed).toBe(true);
    });
  });
}
