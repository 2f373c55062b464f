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
  const bytes = v1.SyncMessage.encode(message).finish();
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
