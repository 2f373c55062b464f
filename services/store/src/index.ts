export { storeConfigSchema, storeService, VERSION } from './service.js';
