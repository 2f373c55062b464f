/**
 * A typed client of the merge service over the bus (the gateway and tools use it).
 */
import type { Bus, RequestOptions } from '@lattice/bus';
import type { JsonValue } from '@lattice/dql';
import { v1 } from '@lattice/proto';
import type { Subjects } from '@lattice/proto';
import { decodeValue, encodeValue } from '@lattice/store';
import type { SubscriptionSpec } from './engine.js';
import type { MergeOp } from './service.js';
import { decodeSyncStatus } from './session.js';
import type { SyncStatus } from './session.js';
import type { ExecuteResult } from './writer.js';

/** Calls the merge service of one peer. */
export class MergeClient {
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #options: RequestOptions;

  constructor(bus: Bus, subjects: Subjects, options: RequestOptions = {}) {
    this.#bus = bus;
    this.#subjects = subjects;
    this.#options = options;
  }

  async #call<T>(op: MergeOp, data: Uint8Array, reply: { decode(b: Uint8Array): T }): Promise<T> {
    const msg = await this.#bus.request(this.#subjects.request('merge', op), data, this.#options);
    return reply.decode(msg.data);
  }

  /** Runs a DQL statement on the peer. */
  async execute(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<ExecuteResult> {
    const r = await this.#call(
      'execute',
      v1.MergeExecuteRequest.encode({ statement, args: encodeValue(args) }).finish(),
      v1.MergeExecuteReply,
    );
    return {
      items: r.items.map((b) => decodeValue(b) as JsonValue),
      mutatedIds: r.mutatedIds.map((b) => decodeValue(b) as JsonValue),
      commitSeq: r.commitSeq,
      warnings: r.warnings,
      queryType: r.queryType,
    };
  }

  async subscribe(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<SubscriptionSpec[]> {
    return specs(
      await this.#call(
        'subscribe',
        v1.MergeSubscriptionRequest.encode({ statement, args: encodeValue(args) }).finish(),
        v1.MergeSubscriptionList,
      ),
    );
  }

  async unsubscribe(
    statement: string,
    args: Readonly<Record<string, JsonValue>> = {},
  ): Promise<SubscriptionSpec[]> {
    return specs(
      await this.#call(
        'unsubscribe',
        v1.MergeSubscriptionRequest.encode({ statement, args: encodeValue(args) }).finish(),
        v1.MergeSubscriptionList,
      ),
    );
  }

  async subscriptions(): Promise<SubscriptionSpec[]> {
    return specs(
      await this.#call(
        'subscriptions',
        v1.MergeSubscriptionListRequest.encode({}).finish(),
        v1.MergeSubscriptionList,
      ),
    );
  }

  /** The peer's id, latest commit and sync status per remote peer. */
  async syncStatus(): Promise<{ peerId: string; lastCommit: number; peers: SyncStatus[] }> {
    const r = await this.#call(
      'sync-status',
      v1.MergeSyncStatusRequest.encode({}).finish(),
      v1.MergeSyncStatusReply,
    );
    return {
      peerId: r.peerId,
      lastCommit: r.lastCommit,
      peers: r.peers.map(decodeSyncStatus),
    };
  }
}

function specs(l: v1.MergeSubscriptionList): SubscriptionSpec[] {
  return l.subscriptions.map((s) => ({
    statement: s.statement ?? '',
    args: (s.args && s.args.length > 0 ? decodeValue(s.args) : {}) as Record<string, JsonValue>,
  }));
}
