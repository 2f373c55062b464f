export { baseConfigSchema, configHelp, envName, flagName, loadConfig } from './config.js';
export type { BaseConfig } from './config.js';
export { serviceError, ServiceErrorCode } from './errors.js';
export {
  checkHealth,
  createLogger,
  defineService,
  onShutdownSignal,
  runMain,
  startService,
} from './service.js';
export type {
  RunningService,
  ServiceContext,
  ServiceDefinition,
  ServiceInstance,
} from './service.js';
