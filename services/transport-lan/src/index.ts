export { transportLanConfigSchema, transportLanService, VERSION } from './service.js';
