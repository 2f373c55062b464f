/**
 * Per-key asynchronous locks: the merge service's per-document serialization of local writes.
 */

/** Exclusive locks on string keys; several keys are taken in sorted order (no deadlock). */
export class KeyedLocks {
  readonly #tails = new Map<string, Promise<void>>();

  /** Waits until every key is free, holds them all, and returns the release function. */
  async lock(keys: Iterable<string>): Promise<() => void> {
    const sorted = [...new Set(keys)].sort();
    const releases: (() => void)[] = [];
    for (const key of sorted) {
      const previous = this.#tails.get(key) ?? Promise.resolve();
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const tail = previous.then(() => held);
      this.#tails.set(key, tail);
      releases.push(() => {
        release();
        // Forget the key once nobody queued behind this holder.
        if (this.#tails.get(key) === tail) this.#tails.delete(key);
      });
      await previous;
    }
    return () => {
      for (const r of releases) r();
    };
  }

  /** Keys currently held or waited for (for tests: no leak after work completes). */
  get size(): number {
    return this.#tails.size;
  }
}
