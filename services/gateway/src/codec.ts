/**
 * Conversions between the peer's results and the wire: MessagePack values in protobuf messages
 * (gRPC) and Ditto-shaped JSON (HTTP).
 */
import type { ItemChange, JsonValue } from '@lattice/dql';
import { parse } from '@lattice/dql';
import { hasCode } from '@lattice/errors';
import { v1 } from '@lattice/proto';
import { decodeValue, encodeValue } from '@lattice/store';
import { gatewayError } from './errors.js';
import type { ObserveBatch } from './observers.js';
import type { PeerExecuteResult } from './peer-api.js';

/** Decodes MessagePack statement arguments (empty bytes: none). */
export function decodeArgs(bytes: Uint8Array | null | undefined): Record<string, JsonValue> {
  if (!bytes || bytes.length === 0) return {};
  let v: unknown;
  try {
    v = decodeValue(bytes);
  } catch (cause) {
    throw gatewayError('GATEWAY_BAD_REQUEST', 'args are not a valid MessagePack value', {}, cause);
  }
  return checkArgs(v);
}

/** Checks that decoded arguments are an object. */
export function checkArgs(v: unknown): Record<string, JsonValue> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw gatewayError('GATEWAY_BAD_REQUEST', 'args must be an object of named arguments');
  }
  return v as Record<string, JsonValue>;
}

/** Encodes one value. */
export function encodeItem(v: JsonValue): Uint8Array {
  return encodeValue(v);
}

/** The statement's query type as Ditto's HTTP API names it (`select`, `insert`, …). */
export function queryTypeOf(statement: string): string {
  try {
    const kind = parse(statement).kind;
    return (
      ({ createIndex: 'create_index', dropIndex: 'drop_index' } as Record<string, string>)[kind] ??
      kind
    );
  } catch (error) {
    // The peer parses the statement again and reports the error precisely.
    if (hasCode(error)) return 'unknown';
    throw error;
  }
}

/** An Execute answer. */
export function toExecuteResponse(statement: string, r: PeerExecuteResult): v1.ExecuteResponse {
  return v1.ExecuteResponse.create({
    items: r.items.map(encodeItem),
    mutatedDocumentIds: r.mutatedIds.map(encodeItem),
    commitId: r.commitSeq,
    warnings: [...r.warnings],
    queryType: queryTypeOf(statement),
  });
}

const CHANGE_KIND = {
  inserted: v1.ItemChangeKind.ITEM_CHANGE_KIND_INSERTED,
  removed: v1.ItemChangeKind.ITEM_CHANGE_KIND_REMOVED,
  updated: v1.ItemChangeKind.ITEM_CHANGE_KIND_UPDATED,
  moved: v1.ItemChangeKind.ITEM_CHANGE_KIND_MOVED,
} as const;

function toItemChange(c: ItemChange): v1.IItemChange {
  return c.kind === 'moved'
    ? { kind: CHANGE_KIND.moved, from: c.from, index: c.to, item: encodeItem(c.item) }
    : { kind: CHANGE_KIND[c.kind], index: c.index, item: encodeItem(c.item) };
}

/** An Observe stream message. */
export function toObserveResponse(b: ObserveBatch): v1.ObserveResponse {
  if (b.kind === 'changes') {
    return v1.ObserveResponse.create({
      kind: v1.ObserveBatchKind.OBSERVE_BATCH_KIND_CHANGES,
      changes: b.changes.map(toItemChange),
      commitId: b.commitId,
    });
  }
  return v1.ObserveResponse.create({
    kind:
      b.kind === 'initial'
        ? v1.ObserveBatchKind.OBSERVE_BATCH_KIND_INITIAL
        : v1.ObserveBatchKind.OBSERVE_BATCH_KIND_RESET,
    items: b.items.map(encodeItem),
    commitId: b.commitId,
    coalescedBatches: b.coalesced,
  });
}

/** A thrown value as a `lattice.v1.Error`. */
export function toErrorMessage(error: unknown): v1.Error {
  if (hasCode(error)) {
    return v1.Error.create({
      code: error.code,
      message: error.message,
      details: { ...error.details },
      kind: error.kind,
      service: 'gateway',
    });
  }
  return v1.Error.create({
    code: 'GATEWAY_INTERNAL',
    message: error instanceof Error ? error.message : String(error),
    kind: 'INTERNAL',
    service: 'gateway',
  });
}
