/**
 * A sync channel over two bus subjects: tests and tools that put two peers' merge services on one
 * NATS server without a multiplexer between them.
 *
 * @remarks NATS core delivers in order per publisher and drops nothing while both sides stay
 * connected, which is what a sync session needs; a disconnect is not detected here (close the
 * channel from outside), so production links go through the multiplexer instead.
 */
import type { Bus } from '@lattice/bus';
import type { MessageChannel } from './channel.js';
import { mergeError } from './errors.js';

/** A channel that publishes on `outSubject` and reads `inSubject`. */
export function busChannel(bus: Bus, outSubject: string, inSubject: string): MessageChannel {
  const subscription = bus.subscribe(inSubject, { maxPending: 100_000 });
  let closed = false;
  return {
    get closed() {
      return closed;
    },
    async send(message) {
      if (closed) throw mergeError('MERGE_CHANNEL_CLOSED', 'the sync channel is closed');
      bus.publish(outSubject, message);
    },
    messages: {
      async *[Symbol.asyncIterator]() {
        for await (const m of subscription) {
          if (closed) return;
          yield m.data;
        }
      },
    },
    close() {
      if (closed) return;
      closed = true;
      subscription.unsubscribe();
    },
  };
}
