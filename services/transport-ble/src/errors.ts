/**
 * Errors of the Bluetooth LE transport, each with a stable code.
 *
 * @remarks Callers branch on `code` with `hasCode(error, 'BLE_STACK_UNAVAILABLE')`.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';

/** Error codes of the BLE transport and their kinds. */
export const BleErrorCode = {
  /** The Bluetooth stack (noble or bleno) could not be loaded or has no usable adapter. */
  BLE_STACK_UNAVAILABLE: ErrorKind.UNAVAILABLE,
  /** A remote device does not offer the Lattice GATT service as expected. */
  BLE_GATT_MISMATCH: ErrorKind.FAILED_PRECONDITION,
  /** Connecting to a remote device failed or timed out. */
  BLE_CONNECT_FAILED: ErrorKind.UNAVAILABLE,
  /** The radio connection went away (supervision timeout, remote disconnect). */
  BLE_DISCONNECTED: ErrorKind.UNAVAILABLE,
  /** A write or notification failed at the stack. */
  BLE_WRITE_FAILED: ErrorKind.UNAVAILABLE,
  /** The driver was closed. */
  BLE_CLOSED: ErrorKind.UNAVAILABLE,
} as const;

/** One BLE transport error code. */
export type BleErrorCode = keyof typeof BleErrorCode;

/** Builds a BLE transport error: `bleError('BLE_CONNECT_FAILED', 'timeout', { peer })`. */
export const bleError = errorFactory(BleErrorCode);
