/**
 * The bytes of one sync message on the channel: a `lattice.v1.SyncMessage`, or (protocol 2) that
 * message raw-deflated inside another one.
 *
 * Wire format (proto/lattice/v1/sync.proto):
 *
 * ```
 * message = SyncMessage{trace?, body}                     any body but `packed`
 *         | SyncMessage{packed: {length, deflated}}       deflated = deflateRaw(inner), where
 *                                                         inner = SyncMessage{trace?, body} and
 *                                                         length = |inner|
 * ```
 *
 * A message is packed when it is at least {@link PACK_FROM_BYTES} long, at most
 * {@link MAX_INFLATED_BYTES}, and its packed form is shorter; never a hello (the first message of
 * a session, read before the remote's protocol is known). Whether to pack is the sender's choice
 * per message, and the receiver accepts either form: a batch of deltas repeats its peer ids,
 * field names, HLC prefixes and framing from one document to the next, which deflate removes
 * without a second codec for the CRDT state.
 *
 * A message of deltas (the bulk of a sync) is written by hand, byte for byte as protobufjs writes
 * it (see {@link encodeDeltasMessage}); everything else goes through protobufjs.
 *
 * Decoding is bounded: a packed message declares its length, the receiver refuses more than
 * {@link MAX_INFLATED_BYTES} and inflates with that exact output limit, and a packed message
 * inside a packed message is refused. Every failure is `MERGE_PROTOCOL`.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { v1 } from '@lattice/proto';
import { mergeError } from './errors.js';

/** Messages shorter than this are never packed (deflate would not pay for its framing). */
export const PACK_FROM_BYTES = 256;

/** Largest message a packed message may inflate to (and largest message the sender packs). */
export const MAX_INFLATED_BYTES = 16 * 1024 * 1024;

/**
 * Above this size a message is deflated at the fastest level: large messages are batches of
 * whole documents (initial sync), where level 1 took a quarter of level 6's time for 5–20% more
 * bytes (200 documents of 1 KB).
 */
const FAST_FROM_BYTES = 64 * 1024;

/** How much of a large message is deflated first, to skip one that would not shrink. */
const SAMPLE_BYTES = 8 * 1024;

/** Encodes a sync message, packed when {@link PACK_FROM_BYTES} and the savings allow it. */
export function encodeSyncMessage(
  message: v1.ISyncMessage,
  options: { readonly pack: boolean },
): Uint8Array {
  const bytes = encodeDeltasMessage(message) ?? v1.SyncMessage.encode(message).finish();
  if (
    !options.pack ||
    message.hello ||
    bytes.length < PACK_FROM_BYTES ||
    bytes.length > MAX_INFLATED_BYTES
  )
    return bytes;
  const large = bytes.length >= FAST_FROM_BYTES;
  // A large message that is already dense (documents the CRDT codec deflated, binary values)
  // would cost ~25 µs per KiB for nothing: a sample of its start decides.
  if (
    large &&
    deflateRawSync(bytes.subarray(0, SAMPLE_BYTES), { level: 1 }).length > 0.9 * SAMPLE_BYTES
  )
    return bytes;
  const deflated = deflateRawSync(bytes, { level: large ? 1 : 6 });
  // The wrapper costs a few bytes of framing: only pack when the result is still shorter.
  if (deflated.length + 12 >= bytes.length) return bytes;
  const packed = v1.SyncMessage.encode({ packed: { length: bytes.length, deflated } }).finish();
  return packed.length < bytes.length ? packed : bytes;
}

/**
 * `SyncMessage{trace?, deltas}` in one allocation, the same bytes protobufjs writes (fields in
 * number order, zero and empty fields left out); `undefined` for any other message, or one with
 * fields this writer leaves to protobufjs (non-ASCII strings, 64-bit values past 2^53).
 * @remarks protobufjs forks its writer and queues operations for every delta; this sizes the
 * message once and writes it into one buffer, 2–3× faster for a batch of 200 documents of 1 KB.
 * A test holds it to protobufjs's bytes.
 */
export function encodeDeltasMessage(message: v1.ISyncMessage): Uint8Array | undefined {
  for (const k in message) {
    if (k !== 'trace' && k !== 'deltas' && message[k as keyof v1.ISyncMessage] != null)
      return undefined;
  }
  const d = message.deltas;
  if (d == null) return undefined;
  for (const k in d) {
    if (
      k !== 'batch' &&
      k !== 'deltas' &&
      k !== 'throughCommit' &&
      k !== 'subscriptionsHash' &&
      d[k as keyof v1.ISyncDeltas] != null
    )
      return undefined;
  }
  const batch = uint64(d.batch);
  const through = uint64(d.throughCommit);
  const hash = d.subscriptionsHash ?? '';
  if (batch === undefined || through === undefined || !isAscii(hash)) return undefined;
  const list = d.deltas ?? [];
  // Sizes first: each delta's body length, then the whole.
  const sizes = new Array<number>(list.length);
  let inner = 0;
  let lastCollection: string | undefined;
  for (let i = 0; i < list.length; i++) {
    const x = list[i] as v1.ISyncDelta;
    for (const k in x) {
      if (k !== 'collection' && k !== 'delta' && x[k as keyof v1.ISyncDelta] != null)
        return undefined;
    }
    const c = x.collection ?? '';
    if (c !== lastCollection) {
      if (!isAscii(c)) return undefined;
      lastCollection = c;
    }
    const delta = x.delta ?? EMPTY;
    if (!(delta instanceof Uint8Array)) return undefined;
    const n =
      (c.length > 0 ? 1 + varintLength(c.length) + c.length : 0) +
      (delta.length > 0 ? 1 + varintLength(delta.length) + delta.length : 0);
    sizes[i] = n;
    inner += 1 + varintLength(n) + n;
  }
  if (batch !== 0) inner += 1 + varintLength(batch);
  if (through !== 0) inner += 1 + varintLength(through);
  if (hash.length > 0) inner += 1 + varintLength(hash.length) + hash.length;
  const trace = message.trace == null ? undefined : v1.TraceContext.encode(message.trace).finish();
  const total =
    (trace ? 1 + varintLength(trace.length) + trace.length : 0) + 1 + varintLength(inner) + inner;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  if (trace) {
    out[at++] = 0x0a; // field 1 (trace), length-delimited
    at = writeVarint(out, at, trace.length);
    out.set(trace, at);
    at += trace.length;
  }
  out[at++] = 0x32; // field 6 (deltas), length-delimited
  at = writeVarint(out, at, inner);
  if (batch !== 0) {
    out[at++] = 0x08; // SyncDeltas.batch
    at = writeVarint(out, at, batch);
  }
  for (let i = 0; i < list.length; i++) {
    const x = list[i] as v1.ISyncDelta;
    const c = x.collection ?? '';
    const delta = x.delta ?? EMPTY;
    out[at++] = 0x12; // SyncDeltas.deltas
    at = writeVarint(out, at, sizes[i] as number);
    if (c.length > 0) {
      out[at++] = 0x0a; // SyncDelta.collection
      at = writeVarint(out, at, c.length);
      at += out.write(c, at, 'latin1');
    }
    if (delta.length > 0) {
      out[at++] = 0x12; // SyncDelta.delta
      at = writeVarint(out, at, delta.length);
      out.set(delta, at);
      at += delta.length;
    }
  }
  if (through !== 0) {
    out[at++] = 0x18; // SyncDeltas.through_commit
    at = writeVarint(out, at, through);
  }
  if (hash.length > 0) {
    out[at++] = 0x22; // SyncDeltas.subscriptions_hash
    at = writeVarint(out, at, hash.length);
    out.write(hash, at, 'latin1');
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/**
 * A uint64 field's value as a number, when protobufjs would write it as that number's varint: a
 * non-negative safe integer, or a `Long`-shaped object of one (the generated prototypes default
 * 64-bit fields to a `Long` zero, which a message read from the wire may carry).
 */
function uint64(v: unknown): number | undefined {
  if (v == null) return 0;
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'object') return undefined;
  const { low, high } = v as { low?: unknown; high?: unknown };
  if (typeof low !== 'number' || typeof high !== 'number') return undefined;
  const n = (high >>> 0) * 0x1_0000_0000 + (low >>> 0);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Whether every char of `s` is ASCII (so its UTF-8 is its latin1, one byte per char). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function varintLength(n: number): number {
  let len = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) len++;
  return len;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  let v = n;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/**
 * Decodes a sync message, unpacking a packed one.
 * @throws `MERGE_PROTOCOL` for bytes that are not a sync message, a packed message over
 * {@link MAX_INFLATED_BYTES} or whose stream does not inflate to its declared length, and a
 * packed message inside a packed one.
 */
export function decodeSyncMessage(bytes: Uint8Array): v1.SyncMessage {
  const outer = decodeMessage(bytes);
  if (outer.body !== 'packed') return outer;
  const p = outer.packed as v1.SyncPacked;
  if (p.length < PACK_FROM_BYTES || p.length > MAX_INFLATED_BYTES) {
    throw mergeError('MERGE_PROTOCOL', `packed sync message declares ${p.length} bytes`);
  }
  let inner: Uint8Array;
  try {
    inner = inflateRawSync(p.deflated, { maxOutputLength: p.length });
  } catch (err) {
    throw mergeError('MERGE_PROTOCOL', 'packed sync message does not inflate', {}, err);
  }
  if (inner.length !== p.length) {
    throw mergeError(
      'MERGE_PROTOCOL',
      `packed sync message inflates to ${inner.length} bytes, not ${p.length}`,
    );
  }
  const msg = decodeMessage(inner);
  if (msg.body === 'packed')
    throw mergeError('MERGE_PROTOCOL', 'packed sync message inside a packed one');
  return msg;
}

function decodeMessage(bytes: Uint8Array): v1.SyncMessage {
  try {
    return v1.SyncMessage.decode(bytes);
  } catch (err) {
    throw mergeError('MERGE_PROTOCOL', 'undecodable sync message', {}, err);
  }
}
