/**
 * Branded identifiers.
 */

/** The id of a peer (a device or service instance); ties between equal clock times break on it. */
export type PeerId = string & { readonly __peerId: true };

/** Longest accepted peer id, in UTF-16 code units. */
export const MAX_PEER_ID_LENGTH = 256;

/**
 * Brands a string as a {@link PeerId}.
 * @remarks Throws `TypeError` for an empty or over-long string: peer ids come from configuration
 * or identities, so a bad one is a programmer mistake.
 */
export function asPeerId(value: string): PeerId {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_PEER_ID_LENGTH) {
    throw new TypeError(
      `peer id must be a non-empty string of at most ${MAX_PEER_ID_LENGTH} characters`,
    );
  }
  return value as PeerId;
}
