export { transportBleConfigSchema, transportBleService, VERSION } from './service.js';
