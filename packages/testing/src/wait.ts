import type { EventEmitter } from 'node:events';
import { LatticeTestError } from './errors.js';

/** Options of the waiting helpers. */
export interface WaitOptions {
  /** Give up after this many milliseconds (default 10 000). */
  readonly timeoutMs?: number;
  /** What is being waited for, for the timeout message. */
  readonly what?: string;
}

/**
 * Resolves with the first event `name` of `emitter`, or rejects after the timeout.
 * @remarks Prefer this (or {@link nextValue}) to polling: tests await events, they don't sleep.
 */
export async function onceEvent<T = unknown>(
  emitter: EventEmitter,
  name: string,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, onEvent);
      reject(timeoutError(options.what ?? `event ${name}`, timeoutMs));
    }, timeoutMs);
    function onEvent(value: T): void {
      clearTimeout(timer);
      resolve(value);
    }
    emitter.once(name, onEvent);
  });
}

/** The next value of an async iterator, or a timeout error. The iterator stays usable. */
export async function nextValue<T>(
  iterator: AsyncIterator<T>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(timeoutError(options.what ?? 'next value', timeoutMs)),
      timeoutMs,
    );
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    if (result.done === true)
      throw new LatticeTestError('TESTING_TIMEOUT', `${options.what ?? 'iterator'} ended`);
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `condition` every `intervalMs` (default 20) until it returns a value other than
 * undefined/false/null, and returns that value. For state with no event to await; where there is
 * an event, use {@link onceEvent} or {@link nextValue}. A throwing condition counts as "not yet".
 */
export async function waitFor<T>(
  condition: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  options: WaitOptions & { readonly intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false && value !== null) return value;
    } catch (error) {
      lastError = error; // the condition may throw until the awaited state exists
    }
    if (Date.now() >= deadline)
      throw timeoutError(options.what ?? 'condition', timeoutMs, lastError);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}

function timeoutError(what: string, timeoutMs: number, cause?: unknown): LatticeTestError {
  return new LatticeTestError(
    'TESTING_TIMEOUT',
    `timed out after ${timeoutMs} ms waiting for ${what}`,
    {
      cause,
    },
  );
}
