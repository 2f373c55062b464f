/**
 * Test helpers for the BLE transport (`@lattice/transport-ble/testing`): the fake air that runs
 * the real noble and bleno code over fake bindings, for this package's tests and for siblings'
 * end-to-end tests over "BLE" without a radio.
 */
export { FakeAir, FakeBlenoBindings, FakeNobleBindings } from './fake-air.js';
export type { FakeAirOptions, FakeAirStats } from './fake-air.js';
