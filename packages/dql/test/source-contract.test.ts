// MemorySource runs the DocumentSource contract, ordered, unordered and behind an async view.
import { describe, it } from 'vitest';
import { MemorySource } from '@lattice/dql';
import type { AsyncDocumentSource, Document, SourceCapabilities } from '@lattice/dql';
import {
  CONTRACT_COLLECTION,
  CONTRACT_DOCUMENTS,
  documentSourceContract,
} from '@lattice/dql/testing';

function memory(capabilities: SourceCapabilities): MemorySource {
  const s = new MemorySource(capabilities);
  for (const d of CONTRACT_DOCUMENTS) s.put(CONTRACT_COLLECTION, d);
  return s;
}

function asAsync(src: MemorySource): AsyncDocumentSource {
  async function* gen(it: Iterable<Document>): AsyncIterable<Document> {
    for (const d of it) {
      await Promise.resolve();
      yield d;
    }
  }
  return {
    capabilities: src.capabilities,
    scan: (c) => gen(src.scan(c)),
    get: (c, ids) => gen(src.get(c, ids)),
    indexScan: (r) => gen(src.indexScan(r)),
  };
}

for (const [name, open] of [
  ['ordered', () => ({ source: memory({ orderedScan: true, orderedIndex: true }) })],
  ['unordered', () => ({ source: memory({ orderedScan: false, orderedIndex: false }) })],
  ['async', () => ({ source: asAsync(memory({ orderedScan: true, orderedIndex: true })) })],
] as const) {
  describe(`DocumentSource contract: MemorySource ${name}`, () => {
    for (const c of documentSourceContract(open)) it(c.name, c.run);
  });
}
