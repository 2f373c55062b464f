// The poller fix against a model of serialport's unix Poller: `once` asks the native side to
// poll for one event before listening, and the native `poll` *replaces* the libuv event mask.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { guardUnixPoller } from '../src/unix-poller.js';

const R = 0b001;
const W = 0b010;

/**
 * `@serialport/bindings-cpp` 13's Poller in miniature: `once(event)` calls `poll(flag)` and then
 * listens; `poll` hands the flag to the native side, which starts libuv polling with exactly that
 * mask (`uv_poll_start` replaces the previous one) and remembers every flag ever asked for
 * (`this->events |= events`), re-polling the remembered ones minus the fired ones after an event.
 */
class ModelPoller extends EventEmitter {
  /** The mask libuv currently polls. */
  mask = 0;
  remembered = 0;
  readonly starts: number[] = [];

  poll(eventFlag = 0): void {
    this.remembered |= eventFlag;
    this.mask = eventFlag;
    this.starts.push(eventFlag);
  }

  override once(event: 'readable' | 'writable', listener: (err: Error | null) => void): this {
    this.poll(event === 'readable' ? R : W);
    return super.once(event, listener);
  }

  /** libuv reports `events` (only those in the mask fire). */
  fire(events: number): void {
    const fired = events & this.mask;
    if (fired === 0) return;
    // Native onData: re-poll what was remembered minus what fired, then call into JS.
    const again = this.remembered & ~fired;
    this.remembered |= again;
    this.mask = again;
    this.starts.push(again);
    if (fired & R) this.emit('readable', null);
    if (fired & W) this.emit('writable', null);
  }

  /** Poller.stop/destroy: cancel every wait with an error. */
  cancel(): void {
    const err = new Error('Canceled');
    this.emit('readable', err);
    this.emit('writable', err);
  }
}

describe('guardUnixPoller', () => {
  it('models the bug: a read that starts waiting drops the wait of a blocked write', () => {
    const poller = new ModelPoller();
    let written = false;
    poller.once('writable', () => (written = true)); // the tty's output buffer was full
    poller.once('readable', () => undefined); // the read loop found nothing to read
    expect(poller.mask).toBe(R);
    poller.fire(W); // the peer drained the line: nobody is told
    expect(written).toBe(false);
  });

  it('keeps waiting for both, wakes each waiter, and polls for nothing nobody waits for', () => {
    const poller = new ModelPoller();
    expect(guardUnixPoller({ poller })).toBe(true);
    const woken: string[] = [];
    poller.once('writable', () => woken.push('write'));
    poller.once('readable', () => woken.push('read'));
    expect(poller.mask).toBe(R | W);
    poller.fire(W);
    expect(woken).toEqual(['write']);
    expect(poller.mask).toBe(R); // still waiting for the read, no longer for a write
    poller.fire(R);
    expect(woken).toEqual(['write', 'read']);
    expect(poller.mask).toBe(0); // nobody waits: no wake-ups for an fd that is always writable
    poller.once('readable', () => woken.push('read again'));
    expect(poller.mask).toBe(R);
    poller.fire(R | W);
    expect(woken).toEqual(['write', 'read', 'read again']);
  });

  it('does not poll again after a cancellation, and leaves bindings without a poller alone', () => {
    const poller = new ModelPoller();
    guardUnixPoller({ poller });
    const errors: unknown[] = [];
    poller.once('readable', (e) => errors.push(e));
    const starts = poller.starts.length;
    poller.cancel();
    expect(errors).toHaveLength(1);
    expect(poller.starts.length).toBe(starts); // a stopped poller is not restarted
    expect(guardUnixPoller({})).toBe(false); // Windows binding: no poller
    expect(guardUnixPoller(undefined)).toBe(false);
  });
});
