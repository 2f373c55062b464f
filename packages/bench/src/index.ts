export { BenchSuite } from './harness.js';
export type { BenchRow, BenchUnit, MeasureOptions } from './harness.js';
