/** The store's DQL source passes the DocumentSource contract of @lattice/dql, on both engines. */
import { asPeerId } from '@lattice/crdt';
import type { Document } from '@lattice/dql';
import {
  CONTRACT_COLLECTION,
  CONTRACT_DOCUMENTS,
  CONTRACT_INDEXES,
  documentSourceContract,
} from '@lattice/dql/testing';
import { DocumentStore } from '@lattice/store';
import { describe, it } from 'vitest';
import { ENGINES } from './helpers.js';

for (const { name, make } of ENGINES) {
  describe(`store source contract on ${name}`, () => {
    const cases = documentSourceContract(async () => {
      const made = await make();
      const store = await DocumentStore.open(made.engine, { sync: false });
      for (const ix of CONTRACT_INDEXES) await store.createIndex(ix.collection, ix.name, ix.path);
      await store.commit({
        writes: CONTRACT_DOCUMENTS.map((d: Document) => ({
          collection: CONTRACT_COLLECTION,
          id: d['_id'] as string,
          state: Uint8Array.of(1),
          value: d,
          versionVector: new Map([[asPeerId('p'), 1]]),
        })),
      });
      return {
        source: store.source,
        close: async () => {
          await store.close();
          await made.dir?.remove();
        },
      };
    });
    for (const c of cases) it(c.name, c.run);
  });
}
