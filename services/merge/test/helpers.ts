import { DocumentStore, MemoryEngine } from '@lattice/store';
import { channelPair, MergeEngine } from '@lattice/merge';
import type { MergeEngineOptions } from '@lattice/merge';

/** A peer on a memory store. */
export async function peer(
  id: string,
  options: Partial<MergeEngineOptions> = {},
): Promise<MergeEngine> {
  const store = options.store ?? (await DocumentStore.open(new MemoryEngine(), { sync: false }));
  return MergeEngine.open({ peerId: id, store, ...options });
}

/** Connects two peers with an in-process channel; returns the channel-close function and byte counts. */
export function link(
  a: MergeEngine,
  b: MergeEngine,
): { close(): void; bytes: { a: number; b: number }; done: Promise<unknown> } {
  const bytes = { a: 0, b: 0 };
  const [ca, cb] = channelPair({ onSend: (from, n) => (bytes[from] += n) });
  const done = Promise.allSettled([a.connect(b.peerId, ca), b.connect(a.peerId, cb)]);
  return { close: () => ca.close(), bytes, done };
}

/** Every live document of a collection on a peer, as plain values sorted by _id. */
export function contents(p: MergeEngine, collection: string): unknown[] {
  return p.store.select(`SELECT * FROM ${collection} ORDER BY _id`);
}
