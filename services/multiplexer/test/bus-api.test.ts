/**
 * The multiplexer's message API on the bus, seen from a client that starts before the
 * multiplexer: nothing the multiplexer publishes from its first feed item on may be lost.
 */
import { LocalBus } from '@lattice/bus';
import {
  MultiplexerClient,
  serveMultiplexerMessages,
  type InboundMessage,
  type MultiplexerEvent,
  type MultiplexerPort,
  type PeerId,
} from '@lattice/multiplexer';
import { Subjects } from '@lattice/proto';
import { waitFor } from '@lattice/testing';
import { describe, expect, it } from 'vitest';

const subjects = new Subjects('bus-api');
const LOCAL = 'local-peer' as PeerId;
const REMOTE = 'remote-peer' as PeerId;

/** A multiplexer stand-in whose events and messages the test fires. */
function fakeMultiplexer(): MultiplexerPort & {
  fire(event: MultiplexerEvent): void;
  deliver(message: InboundMessage): void;
} {
  const listeners = new Set<(e: MultiplexerEvent) => void>();
  const messageListeners = new Set<(m: InboundMessage) => void>();
  const connected = new Set<PeerId>();
  return {
    peerId: LOCAL,
    send: () => Promise.resolve(),
    on(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    onMessage(l) {
      messageListeners.add(l);
      return () => messageListeners.delete(l);
    },
    peers: () => [...connected].map((peerId) => ({ peerId, connected: true })),
    fire(event) {
      if (event.type === 'peer-up') connected.add(event.peerId);
      if (event.type === 'peer-down') connected.delete(event.peerId);
      for (const l of listeners) l(event);
    },
    deliver(message) {
      for (const l of messageListeners) l(message);
    },
  };
}

describe('MultiplexerClient', () => {
  it('started before the multiplexer, sees its first peer-up and the messages that follow', async () => {
    const bus = new LocalBus();
    // The client asks for a peers snapshot at once; nobody answers yet, so it retries later.
    const client = new MultiplexerClient({ bus, subjects, peerId: LOCAL });
    const seen: string[] = [];
    client.on((e) => seen.push(`${e.type} ${'peerId' in e ? e.peerId : ''}`));
    client.onMessage((m) => seen.push(`message ${Buffer.from(m.data).toString()}`));
    const mux = fakeMultiplexer();
    const served = serveMultiplexerMessages(bus, subjects, mux, { heartbeatMs: 50 });
    try {
      // Before the client's snapshot arrives: the remote's session says hello.
      mux.fire({ type: 'peer-up', peerId: REMOTE });
      mux.deliver({ peerId: REMOTE, stream: 2, data: Buffer.from('hello') });
      await waitFor(() => (seen.length >= 2 ? true : undefined), {
        timeoutMs: 5_000,
        what: 'the peer-up and the hello',
      });
      mux.deliver({ peerId: REMOTE, stream: 2, data: Buffer.from('next') });
      await waitFor(() => (seen.length >= 3 ? true : undefined), {
        timeoutMs: 5_000,
        what: 'the next message',
      });
      expect(seen).toEqual([`peer-up ${REMOTE}`, 'message hello', 'message next']);
      expect(client.peers()).toEqual([{ peerId: REMOTE, connected: true }]);
      expect(client.counters.missedItems).toBe(0);
    } finally {
      client.close();
      await served.stop();
      await bus.close();
    }
  });
});
