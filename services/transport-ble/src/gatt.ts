/**
 * The Lattice GATT layout, the advertisement and the MTU arithmetic of a BLE link.
 *
 * @remarks
 * Wire format. A peripheral advertises {@link LATTICE_SERVICE_UUID} with the local name
 * `L<shortId>` (`shortId`: 1–8 characters of `[0-9A-Za-z_-]`, so name and 128-bit UUID fit the
 * 31-byte advertisement or its scan response). The service has two characteristics:
 *
 * - {@link LATTICE_RX_UUID} (write without response): central → peripheral;
 * - {@link LATTICE_TX_UUID} (notify): peripheral → central.
 *
 * Every ATT value is exactly one link frame of 1 to `MTU − 3` bytes; nothing else is framed
 * (the BLE link layer already checks each PDU with a CRC-24 and retransmits it, so a connection
 * delivers every write in order or goes down).
 */

/** The Lattice GATT service (128-bit, lower case without dashes as noble and bleno use it). */
export const LATTICE_SERVICE_UUID = '6c617474696365000000000000000001';
/** Central → peripheral, write without response. */
export const LATTICE_RX_UUID = '6c617474696365000000000000000002';
/** Peripheral → central, notify. */
export const LATTICE_TX_UUID = '6c617474696365000000000000000003';

/** Smallest ATT MTU (Bluetooth Core, Vol 3 Part F 3.2.8). */
export const MIN_ATT_MTU = 23;
/** Largest ATT MTU (an attribute value is at most 512 bytes plus the 3-byte header… 517). */
export const MAX_ATT_MTU = 517;
/** ATT header of a write command or a notification: opcode (1) + handle (2). */
export const ATT_HEADER_BYTES = 3;
/** Smallest frame a BLE link carries (the multiplexer's `MIN_FRAME_BYTES`). */
export const MIN_BLE_FRAME_BYTES = MIN_ATT_MTU - ATT_HEADER_BYTES;

const SHORT_ID = /^[0-9A-Za-z_-]{1,8}$/;
const NAME_PREFIX = 'L';

/** Clamps a negotiated MTU into [23, 517]; an unknown MTU counts as 23. */
export function clampMtu(mtu: number | null | undefined): number {
  if (mtu === null || mtu === undefined || !Number.isFinite(mtu)) return MIN_ATT_MTU;
  return Math.min(MAX_ATT_MTU, Math.max(MIN_ATT_MTU, Math.floor(mtu)));
}

/** The link's largest frame for an ATT MTU: `MTU − 3`, at least 20. */
export function maxFrameBytesForMtu(mtu: number | null | undefined): number {
  return Math.max(MIN_BLE_FRAME_BYTES, clampMtu(mtu) - ATT_HEADER_BYTES);
}

/** Whether `id` is a valid short peer id (1–8 characters of `[0-9A-Za-z_-]`). */
export function isShortPeerId(id: string): boolean {
  return SHORT_ID.test(id);
}

/** The advertised local name of a short peer id. */
export function encodeAdvertisedName(shortId: string): string {
  if (!isShortPeerId(shortId)) {
    throw new RangeError(`short peer id must be 1-8 characters of [0-9A-Za-z_-], got ${shortId}`);
  }
  return NAME_PREFIX + shortId;
}

/** The short peer id in an advertised local name, or undefined when it is not a Lattice name. */
export function decodeAdvertisedName(name: string | undefined): string | undefined {
  if (name === undefined || !name.startsWith(NAME_PREFIX)) return undefined;
  const id = name.slice(NAME_PREFIX.length);
  return isShortPeerId(id) ? id : undefined;
}

/**
 * Whether the side with id `self` dials the side with id `other`.
 *
 * @remarks The lower id (by code unit order) dials, so two gateways that see each other make
 * exactly one connection; equal ids (ourselves) never dial.
 */
export function shouldDial(self: string, other: string): boolean {
  return self < other;
}
