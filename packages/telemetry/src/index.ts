export {
  createTelemetry,
  installContextPropagation,
  otlpTracesUrl,
  setupTelemetry,
} from './telemetry.js';
export type { Telemetry, TelemetryOptions } from './telemetry.js';
