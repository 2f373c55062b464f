/**
 * The message channel a sync session runs over: ordered and reliable, with backpressure.
 *
 * @remarks The multiplexer provides one per remote peer; {@link channelPair} is the in-process
 * pair used by tests, the simulator and peers in one process.
 */
import { mergeError } from './errors.js';

/** An ordered, reliable, bidirectional message channel. */
export interface MessageChannel {
  /** Queues a message; resolves when the channel accepted it (waits while it is full). */
  send(message: Uint8Array): Promise<void>;
  /** Messages from the other side, in order; ends when the channel closes. */
  readonly messages: AsyncIterable<Uint8Array>;
  /** Closes both directions; pending sends reject with `MERGE_CHANNEL_CLOSED`. */
  close(): void;
  readonly closed: boolean;
}

/** Options of {@link channelPair}. */
export interface ChannelPairOptions {
  /** Messages buffered per direction before `send` waits (default 64). */
  readonly capacity?: number;
  /** Called with each message's size as it is sent (byte accounting in tests). */
  readonly onSend?: (from: 'a' | 'b', bytes: number) => void;
}

/** Two connected in-process channel ends. */
export function channelPair(options: ChannelPairOptions = {}): [MessageChannel, MessageChannel] {
  const capacity = options.capacity ?? 64;
  const queues: [Uint8Array[], Uint8Array[]] = [[], []];
  const readers: [(() => void) | undefined, (() => void) | undefined] = [undefined, undefined];
  const writers: [(() => void)[], (() => void)[]] = [[], []];
  let closed = false;
  const wake = (i: 0 | 1): void => {
    const r = readers[i];
    readers[i] = undefined;
    r?.();
  };
  const closeAll = (): void => {
    if (closed) return;
    closed = true;
    wake(0);
    wake(1);
    for (const w of [...writers[0].splice(0), ...writers[1].splice(0)]) w();
  };
  const end = (self: 0 | 1): MessageChannel => {
    const other = (1 - self) as 0 | 1;
    return {
      get closed() {
        return closed;
      },
      async send(message) {
        for (;;) {
          if (closed) throw mergeError('MERGE_CHANNEL_CLOSED', 'the sync channel is closed');
          if (queues[other].length < capacity) break;
          await new Promise<void>((r) => writers[other].push(r));
        }
        options.onSend?.(self === 0 ? 'a' : 'b', message.length);
        queues[other].push(message);
        wake(other);
      },
      messages: {
        async *[Symbol.asyncIterator]() {
          for (;;) {
            const q = queues[self];
            const m = q.shift();
            if (m !== undefined) {
              writers[self].shift()?.();
              yield m;
              continue;
            }
            if (closed) return;
            await new Promise<void>((r) => (readers[self] = r));
          }
        },
      },
      close: closeAll,
    };
  };
  return [end(0), end(1)];
}
