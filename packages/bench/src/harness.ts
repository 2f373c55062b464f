/**
 * The benchmark harness: a suite measures our code ("lattice…" subjects) and an anchor on the same
 * workload in the same run, then prints a table with each subject's ratio to the anchor and can
 * write the rows as JSON (`{suite, case, subject, metric, value, unit}`).
 *
 * @remarks
 * Timing uses tinybench (warm-up, then samples for a fixed time); we report the median (p50)
 * throughput and the p50/p99 latency. Machines here are shared and noisy: the ratio is the result,
 * the absolute numbers are context.
 */
import { Bench } from 'tinybench';

/** Units say which way is better: `ops/s` and `MB/s` higher, `ms`, `µs` and `bytes` lower. */
export type BenchUnit = 'ops/s' | 'MB/s' | 'ms' | 'µs' | 'bytes';

/** One measured value. */
export interface BenchRow {
  readonly suite: string;
  readonly case: string;
  /** `lattice…` for our code, or the anchor's name (`nats-raw`, `yjs`, `rocksdb`, …). */
  readonly subject: string;
  readonly metric: string;
  readonly value: number;
  readonly unit: BenchUnit;
}

/** Options of {@link BenchSuite.measure}. */
export interface MeasureOptions {
  /** The subject the others are compared with. */
  readonly anchor: string;
  /** How many operations one call of a subject's function performs (default 1). */
  readonly opsPerCall?: number;
  /** Measuring time per subject in ms (default 1 000; `LATTICE_BENCH_TIME` overrides). */
  readonly timeMs?: number;
}

/** A suite of cases; see the module comment. */
export class BenchSuite {
  readonly name: string;
  readonly rows: BenchRow[] = [];
  readonly #anchors = new Map<string, string>();

  constructor(name: string) {
    this.name = name;
  }

  /** Times every subject on one case, one after the other, and records throughput and latency. */
  async measure(
    caseName: string,
    subjects: Readonly<Record<string, () => unknown>>,
    options: MeasureOptions,
  ): Promise<void> {
    if (!(options.anchor in subjects))
      throw new RangeError(`anchor ${options.anchor} is not among the subjects`);
    this.#anchors.set(caseName, options.anchor);
    const opsPerCall = options.opsPerCall ?? 1;
    const time = Number(process.env['LATTICE_BENCH_TIME'] ?? options.timeMs ?? 1_000);
    for (const [subject, fn] of Object.entries(subjects)) {
      const bench = new Bench({ time, warmupTime: Math.min(300, time / 3) });
      bench.add(subject, fn);
      await bench.run();
      const result = bench.tasks[0]?.result;
      if (result === undefined || !('latency' in result)) {
        throw new Error(
          `benchmark ${caseName}/${subject} did not complete: ${JSON.stringify(result)}`,
        );
      }
      this.record(caseName, subject, 'throughput', result.throughput.p50 * opsPerCall, 'ops/s');
      this.record(caseName, subject, 'latency p50', (result.latency.p50 * 1000) / opsPerCall, 'µs');
      this.record(caseName, subject, 'latency p99', (result.latency.p99 * 1000) / opsPerCall, 'µs');
    }
  }

  /** Records a value measured some other way (bytes on the wire, peak memory). */
  record(
    caseName: string,
    subject: string,
    metric: string,
    value: number,
    unit: BenchUnit,
    anchor?: string,
  ): void {
    if (anchor !== undefined) this.#anchors.set(caseName, anchor);
    this.rows.push({ suite: this.name, case: caseName, subject, metric, value, unit });
  }

  /** The ratio of a row to the anchor's row of the same case and metric (undefined for the anchor). */
  ratio(row: BenchRow): number | undefined {
    const anchor = this.#anchors.get(row.case);
    if (anchor === undefined || anchor === row.subject) return undefined;
    const base = this.rows.find(
      (r) => r.case === row.case && r.metric === row.metric && r.subject === anchor,
    );
    return base === undefined || base.value === 0 ? undefined : row.value / base.value;
  }

  /** The table as text: one line per row, with the ratio to the case's anchor. */
  format(): string {
    const header = ['case', 'subject', 'metric', 'value', 'unit', 'ratio'];
    const lines = this.rows.map((r) => {
      const ratio = this.ratio(r);
      return [
        r.case,
        r.subject,
        r.metric,
        formatNumber(r.value),
        r.unit,
        ratio === undefined ? '—' : `${ratio.toFixed(2)}×`,
      ];
    });
    const widths = header.map((h, i) =>
      Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)),
    );
    const row = (cells: readonly string[]): string =>
      `| ${cells.map((c, i) => (i >= 3 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
    return [
      `### ${this.name}`,
      '',
      row(header),
      `|${widths.map((w, i) => (i >= 3 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`,
      ...lines.map(row),
    ].join('\n');
  }
}

function formatNumber(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  if (value >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}
