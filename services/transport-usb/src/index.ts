export { transportUsbConfigSchema, transportUsbService, VERSION } from './service.js';
