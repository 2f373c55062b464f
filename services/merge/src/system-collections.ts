/**
 * DQL system collections: read-only views the merge engine computes on each query, never
 * stored or synced.
 *
 * - `system:data_sync_info` — one document per remote peer this peer has had a sync session
 *   with, shaped as Ditto's (`_id` the peer id, `is_ditto_server`, and under `documents`
 *   `sync_session_status` "Connected" / "Not Connected", `synced_up_to_local_commit_id` the
 *   latest local commit the remote acknowledged holding durably, `last_update_received_time` in
 *   Unix ms). Lattice adds the session state and traffic counters under `documents` too.
 *
 * A SELECT over a system collection runs the full DQL executor (WHERE, ORDER BY, projections,
 * aggregates) over those documents. Writing to a system collection fails with
 * `MERGE_SYSTEM_COLLECTION`.
 */
import type { Document, DocumentSource, JsonValue, SelectStatement } from '@lattice/dql';
import { executePlan, MemorySource, planQuery } from '@lattice/dql';
import { mergeError } from './errors.js';
import type { SyncStatus } from './session.js';

/** The prefix that names a system collection. */
export const SYSTEM_COLLECTION_PREFIX = 'system:';

/** The system collections there are. */
export const SYSTEM_COLLECTIONS = ['system:data_sync_info'] as const;

/** Whether `collection` names a system collection (known or not). */
export function isSystemCollection(collection: string): boolean {
  return collection.startsWith(SYSTEM_COLLECTION_PREFIX);
}

/** What the system collections are computed from. */
export interface SystemState {
  syncStatus(): readonly SyncStatus[];
}

/** The documents of `system:data_sync_info`. */
export function dataSyncInfo(status: readonly SyncStatus[]): Document[] {
  return status.map((s) => ({
    _id: s.remotePeer,
    is_ditto_server: false,
    documents: {
      sync_session_status:
        s.state === 'syncing' || s.state === 'idle' ? 'Connected' : 'Not Connected',
      synced_up_to_local_commit_id: s.ackedThrough,
      last_update_received_time: s.lastReceivedAt,
      session_state: s.state,
      received_through_remote_commit_id: s.receivedThrough,
      bytes_sent: s.bytesSent,
      bytes_received: s.bytesReceived,
      documents_sent: s.documentsSent,
      documents_received: s.documentsReceived,
      documents_refused: s.documentsRefused,
    },
  }));
}

/**
 * The documents of system collection `name` as they are now, as a DQL source.
 * @throws `MERGE_SYSTEM_COLLECTION` for a name that is not one.
 */
export function systemSource(name: string, state: SystemState): DocumentSource {
  if (name !== 'system:data_sync_info') {
    throw mergeError(
      'MERGE_SYSTEM_COLLECTION',
      `no system collection ${name}; there are ${SYSTEM_COLLECTIONS.join(', ')}`,
      { collection: name },
    );
  }
  const source = new MemorySource();
  for (const d of dataSyncInfo(state.syncStatus())) source.put(name, d);
  return source;
}

/** Runs a SELECT over a system collection; unknown names fail with `MERGE_SYSTEM_COLLECTION`. */
export function selectSystem(
  stmt: SelectStatement,
  args: Readonly<Record<string, JsonValue>>,
  state: SystemState,
  now: () => number,
): JsonValue[] {
  const source = systemSource(stmt.from.name, state);
  return executePlan(planQuery(stmt, { args }), source, { now }).items;
}

/** Fails with `MERGE_SYSTEM_COLLECTION`: system collections are read-only. */
export function refuseSystemWrite(collection: string, statement: string): never {
  throw mergeError(
    'MERGE_SYSTEM_COLLECTION',
    `${collection} is a read-only system collection; ${statement.toUpperCase()} is refused`,
    { collection },
  );
}
