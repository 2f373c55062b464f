/**
 * A fix for `serialport`'s unix poller, which forgets a blocked write when a read starts waiting.
 *
 * @remarks
 * `@serialport/bindings-cpp` (13.0.0, Linux and macOS) reads and writes a port's non-blocking
 * fd with `fs.read` / `fs.write`; on `EAGAIN` it waits for the fd with one libuv `uv_poll_t`
 * per port (`Poller.once('readable' | 'writable')`). Its native `Poller::poll(events)` calls
 * `uv_poll_start(handle, events)` with only the event just asked for, and `uv_poll_start`
 * *replaces* the handle's event mask. So when a write is blocked (the tty's output buffer is
 * full: the peer is slow to read) and the read loop then waits for `readable`, the write's
 * `writable` interest is dropped: the write sleeps until the next readable event, when the native
 * callback re-polls the remembered events. If the peer sends nothing, that is its next keepalive
 * — a stall of one keepalive period, seen on ptys under bulk transfer in both directions (the
 * `stall` test of `serial-link-driver.test.ts` shows a 5 s gap with a 5 s keepalive without this).
 * The native side also never forgets an event once asked for, so after the first blocked write
 * it polls `writable` again after every readable event — on an fd that is nearly always
 * writable, a wake-up of the event loop for nothing.
 *
 * {@link guardUnixPoller} wraps the poller object of one open port: every native `poll` asks for
 * the union of the events someone waits for, and after every event the poll is set to exactly
 * the events still awaited (none: the poll stops). It touches only that port's poller, only
 * when the binding has one of the expected shape (Windows has none: nothing to do).
 */
import type { EventEmitter } from 'node:events';

const READABLE = 0b001;
const WRITABLE = 0b010;
const DISCONNECT = 0b100;

/** The part of bindings-cpp's `Poller` this module relies on. */
interface UnixPoller extends EventEmitter {
  poll(eventFlag?: number): void;
}

function isUnixPoller(value: unknown): value is UnixPoller {
  const p = value as Partial<UnixPoller> | null | undefined;
  return (
    typeof p?.poll === 'function' &&
    typeof p.emit === 'function' &&
    typeof p.listenerCount === 'function'
  );
}

/**
 * Makes the poller of an open `serialport` binding wait for reads and writes together.
 * @param binding the opened binding (`SerialPort#port`); anything without a poller is left alone.
 * @returns whether a poller was guarded.
 */
export function guardUnixPoller(binding: unknown): boolean {
  const poller = (binding as { poller?: unknown } | null | undefined)?.poller;
  if (!isUnixPoller(poller)) return false;
  const nativePoll = poller.poll.bind(poller);
  const emit = poller.emit.bind(poller);
  const awaited = (): number =>
    (poller.listenerCount('readable') > 0 ? READABLE : 0) |
    (poller.listenerCount('writable') > 0 ? WRITABLE : 0) |
    (poller.listenerCount('disconnect') > 0 ? DISCONNECT : 0);
  // `Poller.once` polls before it adds its listener: the new event comes in as `eventFlag`.
  poller.poll = (eventFlag = 0) => nativePoll(eventFlag | awaited());
  poller.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    const listened = emit(event, ...args);
    // An event with an error means the poller stopped (closed port, libuv error): leave it be.
    if (args[0] === null) nativePoll(awaited());
    return listened;
  };
  return true;
}
