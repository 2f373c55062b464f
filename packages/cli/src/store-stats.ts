/**
 * `lattice store stats`: counts and sizes per collection, from a running store service (over
 * NATS) or straight from a stopped peer's data folder.
 */
import { join } from 'node:path';
import { NatsBus } from '@lattice/bus';
import { Subjects } from '@lattice/proto';
import { DocumentStore, RocksEngine, StoreClient } from '@lattice/store';
import type { CollectionStats, EngineSizes } from '@lattice/store';

/** What `lattice store stats` prints. */
export interface StoreStatsReport {
  readonly source: string;
  readonly lastSeq: number;
  readonly oldestLogSeq: number;
  readonly totalBytes: number;
  readonly collections: readonly CollectionStats[];
  /** The engine's estimates (RocksDB properties). */
  readonly engine: EngineSizes;
}

/** Reads the stats of a stopped peer's store in `dataDir` (RocksDB allows one process at a time). */
export async function statsFromData(dataDir: string): Promise<StoreStatsReport> {
  const location = join(dataDir, 'store');
  const store = await DocumentStore.open(new RocksEngine(location));
  try {
    return { source: location, ...store.stats() };
  } finally {
    await store.close();
  }
}

/** Asks a running store service on NATS for its stats. */
export async function statsFromService(
  natsUrl: string,
  namespace: string,
): Promise<StoreStatsReport> {
  const bus = await NatsBus.connect({ servers: natsUrl, name: 'lattice-store-stats' });
  try {
    const s = await new StoreClient(bus, new Subjects(namespace)).stats();
    return {
      source: `store service "${namespace}" at ${natsUrl}`,
      lastSeq: s.lastSeq,
      oldestLogSeq: s.oldestLogSeq,
      totalBytes: s.totalBytes,
      engine: {
        liveDataBytes: Number(s.engineLiveDataBytes),
        diskBytes: Number(s.engineDiskBytes),
        memoryBytes: Number(s.engineMemoryBytes),
      },
      collections: s.collections.map((c) => ({
        collection: c.collection ?? '',
        documents: c.documents ?? 0,
        tombstones: c.tombstones ?? 0,
        indexes: c.indexes ?? 0,
        bytes: c.bytes ?? 0,
      })),
    };
  } finally {
    await bus.close();
  }
}

/** The report as an aligned text table. */
export function formatStats(r: StoreStatsReport): string {
  const rows = [
    ['collection', 'documents', 'tombstones', 'indexes', 'bytes'],
    ...r.collections.map((c) => [
      c.collection,
      String(c.documents),
      String(c.tombstones),
      String(c.indexes),
      String(c.bytes),
    ]),
  ];
  const widths =
    rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  const table = rows
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  '),
    )
    .join('\n');
  return [
    `store: ${r.source}`,
    `commits: ${r.lastSeq} (change log from ${r.oldestLogSeq}), ${r.totalBytes} bytes in collections`,
    `engine: ${r.engine.liveDataBytes} bytes of live data, ${r.engine.diskBytes} in files, ${r.engine.memoryBytes} in memtables (RocksDB estimates)`,
    r.collections.length === 0 ? '(no collections)' : table,
  ].join('\n');
}
