export { mergeConfigSchema, mergeService, VERSION } from './service.js';
