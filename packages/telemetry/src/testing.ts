/** Test helpers: spans recorded in memory. */
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { setupTelemetry, type Telemetry } from './telemetry.js';

export { InMemorySpanExporter };
export type { ReadableSpan };

/**
 * Registers global telemetry that records every span in memory (for tests that check traces).
 * @returns the exporter to read spans from, and the telemetry to shut down.
 */
export function memoryTelemetry(serviceName = 'lattice-test'): {
  exporter: InMemorySpanExporter;
  telemetry: Telemetry;
} {
  const exporter = new InMemorySpanExporter();
  const telemetry = setupTelemetry({ serviceName, exporter, env: {} });
  return { exporter, telemetry };
}
