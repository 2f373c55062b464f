import { asPeerId, CrdtDocument, HybridClock } from '@lattice/crdt';
import type { DocId, Path, Value, WriteIntent } from '@lattice/crdt';

/** A replica of one document with its own clock over a fake wall clock. */
export class Replica {
  readonly clock: HybridClock;
  doc: CrdtDocument;
  wall: number;
  constructor(
    readonly name: string,
    id: DocId = 'doc',
    wall = 1_700_000_000_000,
  ) {
    this.wall = wall;
    this.clock = new HybridClock({ peer: asPeerId(name), wallClock: () => this.wall });
    this.doc = CrdtDocument.create(id);
  }
  write(intent: WriteIntent): ReturnType<CrdtDocument['write']> {
    return this.doc.write(intent, this.clock.now());
  }
  set(path: Path, value: Value): void {
    this.write({ kind: 'update', set: [{ path, value }] });
  }
  unset(path: Path): void {
    this.write({ kind: 'update', unset: [path] });
  }
  insert(
    document: Record<string, Value>,
    onConflict?: 'FAIL' | 'DO_NOTHING' | 'DO_UPDATE' | 'DO_UPDATE_LOCAL_DIFF',
  ): void {
    this.write({ kind: 'insert', document, ...(onConflict === undefined ? {} : { onConflict }) });
  }
  /** Pulls everything `other` has that this replica lacks. */
  pull(other: Replica): void {
    this.doc.merge(other.doc.delta(this.doc.versionVector), { clock: this.clock });
  }
}

/** Two-way sync. */
export function sync(a: Replica, b: Replica): void {
  a.pull(b);
  b.pull(a);
}
