export { BleLinkDriver } from './ble-link-driver.js';
export type {
  BleAdapterState,
  BleCounters,
  BleLinkDriverOptions,
  BleStackLoaders,
  BleStatus,
} from './ble-link-driver.js';
export { BleErrorCode, bleError } from './errors.js';
export {
  ATT_HEADER_BYTES,
  clampMtu,
  decodeAdvertisedName,
  encodeAdvertisedName,
  isShortPeerId,
  LATTICE_RX_UUID,
  LATTICE_SERVICE_UUID,
  LATTICE_TX_UUID,
  MAX_ATT_MTU,
  MIN_ATT_MTU,
  MIN_BLE_FRAME_BYTES,
  maxFrameBytesForMtu,
  shouldDial,
} from './gatt.js';
export { Pacer } from './pacer.js';
export type { PacerOptions } from './pacer.js';
export {
  adapterDetails,
  createTransportBleService,
  transportBleConfigSchema,
  transportBleService,
  VERSION,
} from './service.js';
export type { StackChooser, TransportBleConfig } from './service.js';
export { defaultStackLoaders, loadBleno, loadNoble } from './stacks.js';
