/**
 * The gRPC DQL API (`lattice.v1.DqlService`, proto/lattice/v1/gateway.proto) on `@grpc/grpc-js`.
 *
 * @remarks
 * Messages are (de)serialized by the protobufjs classes generated from the proto (`v1.X`); no
 * proto-loader. Failures end the call with the gRPC status of the error's kind
 * (`statusOf`, the one table in `@lattice/errors`) and trailing metadata `lattice-error-code`
 * and `lattice-error-bin` (a `lattice.v1.Error`). Deadlines: a call whose deadline has passed is
 * not started, and a unary call answers `DEADLINE_EXCEEDED` when its deadline passes first (a
 * write already handed to the peer may still commit; the peer's API takes no signal yet).
 */
import * as grpc from '@grpc/grpc-js';
import { statusOf } from '@lattice/errors';
import { encodeSyncStatus } from '@lattice/merge';
import type { JsonValue } from '@lattice/dql';
import { v1 } from '@lattice/proto';
import { createHash } from 'node:crypto';
import { encodeValue } from '@lattice/store';
import type { ApiKeys } from './auth.js';
import { decodeArgs, toErrorMessage, toExecuteResponse, toObserveResponse } from './codec.js';
import { gatewayError } from './errors.js';
import type { ObserverHub, Observer } from './observers.js';
import type { PeerApi } from './peer-api.js';
import { authorizeStatement, withinRead } from './permissions.js';
import type { Principal } from './permissions.js';
import { SpanKind } from '@opentelemetry/api';
import { inSpan, traceHeaders } from './tracing.js';

/** Full name of the service. */
export const DQL_SERVICE_NAME = 'lattice.v1.DqlService';

interface MessageClass<T> {
  encode(message: NoInfer<T>): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

function method<Req, Res>(
  name: string,
  req: MessageClass<Req>,
  res: MessageClass<Res>,
  responseStream: boolean,
): grpc.MethodDefinition<Req, Res> {
  const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  return {
    path: `/${DQL_SERVICE_NAME}/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: (m) => toBuffer(req.encode(m).finish()),
    requestDeserialize: (b) => req.decode(b),
    responseSerialize: (m) => toBuffer(res.encode(m).finish()),
    responseDeserialize: (b) => res.decode(b),
  };
}

/** The service definition (paths and serializers), for servers and clients. */
export const dqlServiceDefinition = {
  execute: method('Execute', v1.ExecuteRequest, v1.ExecuteResponse, false),
  observe: method('Observe', v1.ObserveRequest, v1.ObserveResponse, true),
  registerSubscription: method(
    'RegisterSubscription',
    v1.RegisterSubscriptionRequest,
    v1.RegisterSubscriptionResponse,
    false,
  ),
  cancelSubscription: method(
    'CancelSubscription',
    v1.CancelSubscriptionRequest,
    v1.CancelSubscriptionResponse,
    false,
  ),
  listSubscriptions: method(
    'ListSubscriptions',
    v1.ListSubscriptionsRequest,
    v1.ListSubscriptionsResponse,
    false,
  ),
  syncStatus: method('SyncStatus', v1.SyncStatusRequest, v1.SyncStatusResponse, false),
  presence: method('Presence', v1.PresenceRequest, v1.PresenceResponse, true),
} as const;

/** A grpc-js client class for {@link dqlServiceDefinition} (tests, benchmarks, tools). */
export const DqlClient = grpc.makeGenericClientConstructor(
  dqlServiceDefinition as unknown as grpc.ServiceDefinition,
  'DqlService',
);

/** A thrown value as a gRPC status with our code in trailing metadata. */
export function toServiceError(error: unknown): Partial<grpc.StatusObject> & Error {
  const message = toErrorMessage(error);
  const metadata = new grpc.Metadata();
  metadata.set('lattice-error-code', message.code);
  metadata.set('lattice-error-bin', Buffer.from(v1.Error.encode(message).finish()));
  const out = new Error(message.message) as Error & Partial<grpc.StatusObject>;
  out.code = statusOf(error).grpc;
  out.details = `${message.code}: ${message.message}`;
  out.metadata = metadata;
  return out;
}

/** The id of a subscription: a hash of its statement and encoded arguments. */
export function subscriptionId(
  statement: string,
  args: Readonly<Record<string, JsonValue>>,
): string {
  return createHash('sha256')
    .update(statement)
    .update('\0')
    .update(encodeValue(args))
    .digest('hex')
    .slice(0, 32);
}

/** Options of {@link addDqlService}. */
export interface DqlServiceOptions {
  readonly peer: PeerApi;
  readonly hub: ObserverHub;
  readonly keys: ApiKeys;
  /** How often the Presence stream looks for changes (ms, default 1000). */
  readonly presenceIntervalMs?: number;
}

function deadlineMs(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : Infinity;
}

/** Runs `work` unless the deadline passes first. */
async function withDeadline<T>(deadline: number, work: () => Promise<T>): Promise<T> {
  const left = deadline - Date.now();
  if (left <= 0) throw gatewayError('GATEWAY_DEADLINE_EXCEEDED', 'deadline exceeded before start');
  if (left === Infinity) return work();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(gatewayError('GATEWAY_DEADLINE_EXCEEDED', 'deadline exceeded')),
      left,
    );
  });
  try {
    return await Promise.race([work(), expired]);
  } finally {
    clearTimeout(timer);
  }
}

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** Adds `lattice.v1.DqlService` over `peer` to a grpc-js server; returns its cleanup. */
export function addDqlService(server: grpc.Server, options: DqlServiceOptions): () => void {
  const { peer, hub, keys } = options;
  const streams = new Set<() => void>();

  const authorize = (call: { metadata: grpc.Metadata }): Principal => {
    const value = call.metadata.get('authorization')[0];
    return keys.check(typeof value === 'string' ? value : undefined);
  };

  const unary =
    <Req, Res>(
      handler: (request: Req, principal: Principal) => Promise<Res>,
      spanName?: string,
    ): Unary<Req, Res> =>
    (call, callback) => {
      const run = async (): Promise<Res> => {
        const principal = authorize(call);
        return withDeadline(deadlineMs(call), () => handler(call.request, principal));
      };
      const headers = traceHeaders((n) => {
        const v = call.metadata.get(n)[0];
        return typeof v === 'string' ? v : undefined;
      });
      (spanName === undefined ? run() : inSpan(spanName, SpanKind.SERVER, headers, run)).then(
        (res) => callback(null, res),
        (error: unknown) => callback(toServiceError(error)),
      );
    };

  const execute = unary<v1.ExecuteRequest, v1.ExecuteResponse>(async (req, principal) => {
    const statement = req.statement;
    if (!statement) throw gatewayError('GATEWAY_BAD_REQUEST', 'statement is required');
    const args = decodeArgs(req.args);
    const result = await peer.execute(authorizeStatement(principal, statement, args), args);
    return toExecuteResponse(statement, result);
  }, 'DqlService/Execute');

  const toSub = (s: { statement: string; args: Readonly<Record<string, JsonValue>> }) =>
    v1.DqlSubscription.create({
      id: subscriptionId(s.statement, s.args),
      statement: s.statement,
      args: encodeValue(s.args),
    });

  const registerSubscription = unary<
    v1.RegisterSubscriptionRequest,
    v1.RegisterSubscriptionResponse
  >(async (req, principal) => {
    const args = decodeArgs(req.args);
    // A restricted key subscribes to what it may read: its condition joins the WHERE clause.
    const statement = authorizeStatement(principal, req.statement, args);
    await peer.subscribe(statement, args);
    return v1.RegisterSubscriptionResponse.create({
      subscription: toSub({ statement, args }),
    });
  });

  const cancelSubscription = unary<v1.CancelSubscriptionRequest, v1.CancelSubscriptionResponse>(
    async (req, principal) => {
      // A restricted key sees and cancels only subscriptions within what it may read.
      const found = peer
        .subscriptions()
        .find(
          (s) =>
            subscriptionId(s.statement, s.args) === req.id && withinRead(principal, s.statement),
        );
      if (found) await peer.unsubscribe(found.statement, found.args);
      return v1.CancelSubscriptionResponse.create({ cancelled: found !== undefined });
    },
  );

  const listSubscriptions = unary<v1.ListSubscriptionsRequest, v1.ListSubscriptionsResponse>(
    (_req, principal) =>
      Promise.resolve(
        v1.ListSubscriptionsResponse.create({
          subscriptions: peer
            .subscriptions()
            .filter((s) => withinRead(principal, s.statement))
            .map(toSub),
        }),
      ),
  );

  const syncStatus = unary<v1.SyncStatusRequest, v1.SyncStatusResponse>(() =>
    Promise.resolve(
      v1.SyncStatusResponse.create({
        peerId: peer.peerId,
        localCommitId: peer.lastCommit(),
        peers: peer.syncStatus().map(encodeSyncStatus),
      }),
    ),
  );

  const observe: grpc.handleServerStreamingCall<v1.ObserveRequest, v1.ObserveResponse> = (call) => {
    let observer: Observer | undefined;
    let draining = false;
    let done = false;
    let stopExpiry = (): void => undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      streams.delete(onGatewayClose);
      stopExpiry();
      observer?.close();
    };
    const fail = (error: unknown): void => {
      if (done) return;
      finish();
      call.emit('error', toServiceError(error));
    };
    const pump = (): void => {
      if (done || draining || !observer) return;
      for (let b = observer.take(); b; b = observer.take()) {
        if (!call.write(toObserveResponse(b))) {
          // The transport's buffer is full (HTTP/2 flow control): wait, and let the
          // observer's bounded queue absorb (or coalesce) what arrives meanwhile.
          draining = true;
          call.once('drain', () => {
            draining = false;
            pump();
          });
          return;
        }
      }
    };
    const onGatewayClose = (): void => {
      fail(gatewayError('GATEWAY_CLOSED', 'the gateway is closing'));
    };
    call.on('cancelled', finish);
    call.on('close', finish);
    streams.add(onGatewayClose);
    try {
      const principal = authorize(call);
      if (deadlineMs(call) <= Date.now()) {
        throw gatewayError('GATEWAY_DEADLINE_EXCEEDED', 'deadline exceeded before start');
      }
      const req = call.request;
      const args = decodeArgs(req.args);
      const statement = authorizeStatement(principal, req.statement, args);
      // The stream ends when its key expires or a reload revokes it.
      stopExpiry = keys.watch(principal, fail);
      const start = (): void => {
        if (done) return;
        observer = hub.observe(statement, args, {
          ...(req.maxQueuedBatches > 0 ? { maxQueued: req.maxQueuedBatches } : {}),
          overflow:
            req.overflow === v1.ObserveOverflow.OBSERVE_OVERFLOW_CANCEL ? 'cancel' : 'coalesce',
          onReadable: pump,
          onError: fail,
        });
        pump();
      };
      // A peer in another process first loads what the observer reads (a replica).
      if (peer.prepareObserve) {
        peer.prepareObserve(statement).then(() => {
          try {
            start();
          } catch (error) {
            fail(error);
          }
        }, fail);
      } else {
        start();
      }
    } catch (error) {
      fail(error);
    }
  };

  const presence: grpc.handleServerStreamingCall<v1.PresenceRequest, v1.PresenceResponse> = (
    call,
  ) => {
    let last: Buffer | undefined;
    const send = (): void => {
      const message = v1.PresenceResponse.create({
        presence: v1.MuxPresence.create(peer.presence()),
      });
      const bytes = Buffer.from(v1.PresenceResponse.encode(message).finish());
      // Only changes are sent; a client that does not read sees at most the transport's buffer.
      if (last && bytes.equals(last)) return;
      last = bytes;
      call.write(message);
    };
    let principal: Principal;
    try {
      principal = authorize(call);
    } catch (error) {
      call.emit('error', toServiceError(error));
      return;
    }
    send();
    const timer = setInterval(send, options.presenceIntervalMs ?? 1000);
    const stopExpiry = keys.watch(principal, (error) => {
      stop();
      call.emit('error', toServiceError(error));
    });
    const stop = (): void => {
      clearInterval(timer);
      stopExpiry();
      streams.delete(close);
    };
    const close = (): void => {
      stop();
      call.end();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    streams.add(close);
  };

  server.addService(
    dqlServiceDefinition as unknown as grpc.ServiceDefinition,
    {
      execute,
      observe,
      registerSubscription,
      cancelSubscription,
      listSubscriptions,
      syncStatus,
      presence,
    } as unknown as grpc.UntypedServiceImplementation,
  );

  return () => {
    for (const close of [...streams]) close();
  };
}

/** The error code a failed call carried in its trailing metadata, if any. */
export function errorCodeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('metadata' in error)) return undefined;
  const md = (error as { metadata?: grpc.Metadata }).metadata;
  const v = md?.get('lattice-error-code')[0];
  return typeof v === 'string' ? v : undefined;
}
