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

/**
 * A channel whose inbound messages someone else delivers (a multiplexer stream, a simulated
 * link): it queues them for `messages` and sends through `transmit`.
 * @remarks The queue is not bounded here: the sync protocol's window bounds what a peer sends
 * ahead of acknowledgements.
 */
export class InboxChannel implements MessageChannel {
  closed = false;
  readonly #inbox: Uint8Array[] = [];
  #reader: (() => void) | undefined;
  readonly #transmit: (message: Uint8Array) => Promise<void> | void;
  readonly #onClose: () => void;

  /**
   * @param transmit - sends one message; a failure closes the channel and fails the send.
   * @param onClose - called once when the channel closes.
   */
  constructor(
    transmit: (message: Uint8Array) => Promise<void> | void,
    onClose: () => void = () => undefined,
  ) {
    this.#transmit = transmit;
    this.#onClose = onClose;
  }

  async send(message: Uint8Array): Promise<void> {
    if (this.closed) throw mergeError('MERGE_CHANNEL_CLOSED', 'the sync channel is closed');
    try {
      await this.#transmit(message);
    } catch (err) {
      this.close();
      throw mergeError('MERGE_CHANNEL_CLOSED', 'the sync channel failed to send', {}, err);
    }
  }

  /** Takes the messages delivered but not read yet (for a session that replaces this one). */
  takeUnread(): Uint8Array[] {
    return this.#inbox.splice(0);
  }

  /** Queues a message from the other side. */
  deliver(message: Uint8Array): void {
    this.#inbox.push(message);
    this.#wake();
  }

  #wake(): void {
    const r = this.#reader;
    this.#reader = undefined;
    r?.();
  }

  readonly messages: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: async function* (this: InboxChannel) {
      for (;;) {
        const m = this.#inbox.shift();
        if (m !== undefined) {
          yield m;
          continue;
        }
        if (this.closed) return;
        await new Promise<void>((r) => (this.#reader = r));
      }
    }.bind(this),
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#wake();
    this.#onClose();
  }
}
