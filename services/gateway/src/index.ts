export { gatewayConfigSchema, gatewayService, VERSION } from './service.js';
