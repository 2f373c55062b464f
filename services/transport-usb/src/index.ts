export { usbError, UsbErrorCode } from './errors.js';
export type { UsbError } from './errors.js';
export {
  cobsDecode,
  cobsEncode,
  decodeSerialFrame,
  DELIMITER,
  encodedFrameBytes,
  encodeSerialFrame,
  encodeSerialFrameInto,
  frameOverheadBytes,
  maxEncodedBytes,
  SerialFrameDecoder,
  SerialFrameType,
} from './serial-codec.js';
export type { SerialDecoderCounters, SerialFrame } from './serial-codec.js';
export { SerialLinkDriver, serialBandwidth, serialMaxFrameBytes } from './serial-link-driver.js';
export type {
  SerialLinkDriverOptions,
  SerialPortCounters,
  SerialPortInfo,
} from './serial-link-driver.js';
export {
  startTransportUsbService,
  transportUsbConfigSchema,
  transportUsbService,
  VERSION,
} from './service.js';
export type { TransportUsbConfig, TransportUsbServiceInstance } from './service.js';
