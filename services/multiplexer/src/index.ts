export { multiplexerConfigSchema, multiplexerService, VERSION } from './service.js';
