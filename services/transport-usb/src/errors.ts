/**
 * Errors of the USB serial transport, each with a stable code.
 *
 * @remarks Callers branch on `code` with `hasCode(error, 'USB_PORT_OPEN_FAILED')`.
 */
import { errorFactory, ErrorKind } from '@lattice/errors';
import type { LatticeError } from '@lattice/errors';

/** Error codes of the USB transport and their kinds. */
export const UsbErrorCode = {
  /** A serial port could not be opened (absent, busy, no permission). */
  USB_PORT_OPEN_FAILED: ErrorKind.UNAVAILABLE,
  /** An open port closed or failed (cable unplugged, device reset, I/O error). */
  USB_PORT_CLOSED: ErrorKind.UNAVAILABLE,
  /** A write to a port failed. */
  USB_WRITE_FAILED: ErrorKind.UNAVAILABLE,
  /** Listing the serial ports failed (no udev, no sysfs); configured paths are still used. */
  USB_LIST_FAILED: ErrorKind.UNAVAILABLE,
  /** Nothing, not even a keepalive, arrived on a line for longer than the silence limit. */
  USB_LINK_SILENT: ErrorKind.DEADLINE_EXCEEDED,
  /** A received frame failed its CRC-32 or is not valid COBS. */
  USB_FRAME_CORRUPT: ErrorKind.DATA_LOSS,
  /** A received frame is longer than the decoder's limit. */
  USB_FRAME_TOO_LARGE: ErrorKind.RESOURCE_EXHAUSTED,
  /** The driver was closed. */
  USB_CLOSED: ErrorKind.UNAVAILABLE,
} as const;

/** One USB transport error code. */
export type UsbErrorCode = keyof typeof UsbErrorCode;

/** A USB transport failure: a `LatticeError` with one of {@link UsbErrorCode}. */
export type UsbError = LatticeError;

/** Builds a USB transport error. */
export const usbError = errorFactory(UsbErrorCode);
