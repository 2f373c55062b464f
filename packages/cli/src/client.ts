/**
 * The client commands of `lattice` (`dql`, `observe`, `subscribe`, `peers`, `status`): each is a
 * call to a running gateway's gRPC DQL API, printed as a table or as JSON.
 *
 * @remarks The gateway is found at `--gateway host:port` (or `LATTICE_GATEWAY`, default
 * `127.0.0.1:50051`, where `lattice up` listens); `--api-key` (or `LATTICE_API_KEY`) is sent as a
 * bearer token, `--tls-ca FILE` turns TLS on (`--tls-cert`/`--tls-key` show a client certificate
 * to a gateway with mutual TLS). Failures print the gateway's error code and message
 * and exit with status 1.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { DqlClient } from '@lattice/gateway';
import { v1 } from '@lattice/proto';
import { decodeValue, encodeValue } from '@lattice/store';

/** Where and how to reach the gateway. */
export interface GatewayTarget {
  readonly gateway: string;
  readonly apiKey?: string | undefined;
  readonly tlsCa?: string | undefined;
  /** A client certificate chain and its key (PEM files), for a gateway with mutual TLS. */
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  /** Deadline of a unary call in ms. */
  readonly timeoutMs: number;
}

/** A thin promise-based client of the DQL service. */
export class GatewayClient {
  readonly #client: grpc.Client;
  readonly #target: GatewayTarget;

  constructor(target: GatewayTarget) {
    this.#target = target;
    if ((target.tlsCert === undefined) !== (target.tlsKey === undefined)) {
      throw new ClientError(
        'BAD_FLAGS',
        'a client certificate needs both --tls-cert and --tls-key',
      );
    }
    if (target.tlsCert !== undefined && target.tlsCa === undefined) {
      throw new ClientError('BAD_FLAGS', '--tls-cert needs --tls-ca (mutual TLS is TLS)');
    }
    if (target.tlsCa !== undefined) quietIpServerNameWarning();
    const credentials =
      target.tlsCa === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(
            readFileSync(target.tlsCa),
            target.tlsKey === undefined ? null : readFileSync(target.tlsKey),
            target.tlsCert === undefined ? null : readFileSync(target.tlsCert),
          );
    this.#client = new DqlClient(target.gateway, credentials) as unknown as grpc.Client;
  }

  close(): void {
    this.#client.close();
  }

  #metadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.#target.apiKey !== undefined) m.set('authorization', `Bearer ${this.#target.apiKey}`);
    return m;
  }

  unary<Req, Res>(method: string, request: Req, codec: Codec<Req, Res>): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        `/lattice.v1.DqlService/${method}`,
        (r: Req) => Buffer.from(codec.request.encode(r).finish()),
        (b: Buffer) => codec.response.decode(b),
        request,
        this.#metadata(),
        { deadline: Date.now() + this.#target.timeoutMs },
        (err, res) => (err ? reject(clientError(err, this.#target)) : resolve(res as Res)),
      );
    });
  }

  stream<Req, Res>(
    method: string,
    request: Req,
    codec: Codec<Req, Res>,
  ): grpc.ClientReadableStream<Res> {
    return this.#client.makeServerStreamRequest(
      `/lattice.v1.DqlService/${method}`,
      (r: Req) => Buffer.from(codec.request.encode(r).finish()),
      (b: Buffer) => codec.response.decode(b),
      request,
      this.#metadata(),
    );
  }

  execute(statement: string, args: Record<string, unknown>): Promise<v1.ExecuteResponse> {
    return this.unary('Execute', { statement, args: encodeArgs(args) }, EXECUTE);
  }
}

interface Codec<Req, Res> {
  readonly request: { encode(r: Req): { finish(): Uint8Array } };
  readonly response: { decode(b: Uint8Array): Res };
}

const EXECUTE: Codec<v1.IExecuteRequest, v1.ExecuteResponse> = {
  request: v1.ExecuteRequest,
  response: v1.ExecuteResponse,
};
/** Codecs of the other calls. */
export const CODECS = {
  observe: { request: v1.ObserveRequest, response: v1.ObserveResponse },
  register: { request: v1.RegisterSubscriptionRequest, response: v1.RegisterSubscriptionResponse },
  cancel: { request: v1.CancelSubscriptionRequest, response: v1.CancelSubscriptionResponse },
  list: { request: v1.ListSubscriptionsRequest, response: v1.ListSubscriptionsResponse },
  syncStatus: { request: v1.SyncStatusRequest, response: v1.SyncStatusResponse },
  presence: { request: v1.PresenceRequest, response: v1.PresenceResponse },
} as const satisfies Record<string, Codec<never, unknown>>;

/** A failed call, with the gateway's error code when it sent one. */
let quieted = false;

/**
 * grpc-js sends the gateway's address as the TLS server name even when it is an IP (as in
 * `--gateway 127.0.0.1:50051`), which Node deprecates (DEP0123) with a warning on stderr, where
 * it reads like a failure. The certificate is still checked against that IP, so this warning
 * alone is dropped; every other warning is printed as before.
 */
function quietIpServerNameWarning(): void {
  if (quieted) return;
  quieted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code =
      (typeof rest[0] === 'object' && rest[0] !== null
        ? (rest[0] as { code?: string }).code
        : rest[1]) ?? (warning instanceof Error ? (warning as { code?: string }).code : undefined);
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

export class ClientError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function clientError(err: grpc.ServiceError, target: GatewayTarget): ClientError {
  if (err.code === grpc.status.UNAVAILABLE && !err.metadata?.get('lattice-error-code').length) {
    return new ClientError(
      'UNAVAILABLE',
      `cannot reach the gateway at ${target.gateway} (is \`lattice up\` running? --gateway sets the address)`,
    );
  }
  if (err.code === grpc.status.DEADLINE_EXCEEDED) {
    return new ClientError('DEADLINE_EXCEEDED', `no answer within ${target.timeoutMs} ms`);
  }
  const code = err.metadata?.get('lattice-error-code')[0];
  return new ClientError(
    typeof code === 'string' ? code : (grpc.status[err.code] ?? 'UNKNOWN'),
    err.details || err.message,
  );
}

/** `--args` JSON (an object) as MessagePack, as the gateway expects. */
export function encodeArgs(args: Record<string, unknown>): Uint8Array {
  return Object.keys(args).length === 0 ? new Uint8Array(0) : encodeValue(args as never);
}

/** Parses `--args`: a JSON object. */
export function parseArgsJson(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ClientError('BAD_ARGS', `--args is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ClientError('BAD_ARGS', '--args must be a JSON object of named arguments');
  }
  return v as Record<string, unknown>;
}

/** A MessagePack value from the gateway as plain JSON (binary as base64). */
export function decodeItem(bytes: Uint8Array | null | undefined): unknown {
  return bytes && bytes.length > 0 ? toJson(decodeValue(bytes)) : null;
}

function toJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  }
  return v;
}

/**
 * Rows as a text table: one column per top-level field (in first-seen order, `_id` first),
 * nested values as compact JSON, cells cut at `maxCell` characters.
 */
export function formatTable(rows: readonly unknown[], maxCell = 40): string {
  if (rows.length === 0) return '(no items)';
  const columns: string[] = [];
  const seen = new Set<string>();
  const objects = rows.map((r) =>
    r !== null && typeof r === 'object' && !Array.isArray(r)
      ? (r as Record<string, unknown>)
      : { value: r },
  );
  for (const o of objects) {
    for (const k of Object.keys(o)) {
      if (!seen.has(k)) {
        seen.add(k);
        columns.push(k);
      }
    }
  }
  columns.sort((a, b) => (a === '_id' ? -1 : b === '_id' ? 1 : 0));
  const cell = (v: unknown): string => {
    const s = v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > maxCell ? `${s.slice(0, maxCell - 1)}…` : s;
  };
  const cells = objects.map((o) => columns.map((c) => cell(o[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
    `(${rows.length} ${rows.length === 1 ? 'item' : 'items'})`,
  ].join('\n');
}

/** The text of one Execute answer. */
export function formatExecute(res: v1.ExecuteResponse, json: boolean): string {
  const items = res.items.map(decodeItem);
  const mutated = res.mutatedDocumentIds.map(decodeItem);
  if (json) {
    return JSON.stringify({
      queryType: res.queryType,
      items,
      mutatedDocumentIds: mutated,
      commitId: Number(res.commitId),
      warnings: res.warnings,
    });
  }
  const out: string[] = [];
  if (res.queryType === 'select' || res.queryType === 'explain' || items.length > 0) {
    out.push(formatTable(items));
  }
  if (res.queryType !== 'select' && res.queryType !== 'explain') {
    out.push(
      `${res.queryType}: ${mutated.length} document${mutated.length === 1 ? '' : 's'}` +
        (mutated.length > 0 ? ` (${mutated.map((m) => JSON.stringify(m)).join(', ')})` : '') +
        `, commit ${Number(res.commitId)}`,
    );
  }
  for (const w of res.warnings) out.push(`warning: ${w}`);
  return out.join('\n');
}

const CHANGE_MARK: Record<number, string> = {
  [v1.ItemChangeKind.ITEM_CHANGE_KIND_INSERTED]: '+',
  [v1.ItemChangeKind.ITEM_CHANGE_KIND_REMOVED]: '-',
  [v1.ItemChangeKind.ITEM_CHANGE_KIND_UPDATED]: '~',
  [v1.ItemChangeKind.ITEM_CHANGE_KIND_MOVED]: '>',
};

/** The text of one Observe batch. */
export function formatObserveBatch(batch: v1.ObserveResponse, json: boolean): string {
  const kind = v1.ObserveBatchKind[batch.kind]?.replace('OBSERVE_BATCH_KIND_', '').toLowerCase();
  if (json) {
    return JSON.stringify({
      kind,
      commitId: Number(batch.commitId),
      ...(batch.items.length > 0 ? { items: batch.items.map(decodeItem) } : {}),
      ...(batch.changes.length > 0
        ? {
            changes: batch.changes.map((c) => ({
              kind: v1.ItemChangeKind[c.kind ?? 0]?.replace('ITEM_CHANGE_KIND_', '').toLowerCase(),
              index: c.index,
              ...(c.kind === v1.ItemChangeKind.ITEM_CHANGE_KIND_MOVED ? { from: c.from } : {}),
              item: decodeItem(c.item),
            })),
          }
        : {}),
    });
  }
  if (batch.kind !== v1.ObserveBatchKind.OBSERVE_BATCH_KIND_CHANGES) {
    return `[commit ${Number(batch.commitId)}] ${kind}\n${formatTable(batch.items.map(decodeItem))}`;
  }
  return [
    `[commit ${Number(batch.commitId)}] ${batch.changes.length} change${batch.changes.length === 1 ? '' : 's'}`,
    ...batch.changes.map(
      (c) =>
        `  ${CHANGE_MARK[c.kind ?? 0] ?? '?'} ${c.kind === v1.ItemChangeKind.ITEM_CHANGE_KIND_MOVED ? `${c.from}→` : ''}${c.index} ${JSON.stringify(decodeItem(c.item))}`,
    ),
  ].join('\n');
}

/** The mesh graph as text: one line per link. */
export function formatPresence(p: v1.IMuxPresence): string {
  const peers = p.peers ?? [];
  const rows = peers.flatMap((peer) =>
    (peer.links ?? []).length === 0
      ? [{ peer: peer.peerId ?? '', transport: '', link: '(no link)', rtt_ms: '', goodput: '' }]
      : (peer.links ?? []).map((l) => ({
          peer: peer.peerId ?? '',
          transport: l.transport ?? '',
          link: l.linkId ?? '',
          rtt_ms: l.rttUs ? (Number(l.rttUs) / 1000).toFixed(1) : '',
          goodput: l.goodputBytesPerS ? `${formatBytes(Number(l.goodputBytesPerS))}/s` : '',
        })),
  );
  return `peer ${p.peerId ?? '?'}: ${peers.length} remote peer${peers.length === 1 ? '' : 's'}\n${
    rows.length > 0 ? formatTable(rows, 64).replace(/\n\(\d+ items?\)$/, '') : ''
  }`.trimEnd();
}

/** Sync status as text. */
export function formatStatus(s: v1.SyncStatusResponse): string {
  const rows = s.peers.map((p) => ({
    remote_peer: p.remotePeer,
    state: p.state,
    acked_through: Number(p.ackedThrough),
    received_through: Number(p.receivedThrough),
    last_received: Number(p.lastReceivedAtMs)
      ? new Date(Number(p.lastReceivedAtMs)).toISOString()
      : '',
    sent: formatBytes(Number(p.bytesSent)),
    received: formatBytes(Number(p.bytesReceived)),
  }));
  return `peer ${s.peerId}, local commit ${Number(s.localCommitId)}\n${
    rows.length > 0 ? formatTable(rows, 64).replace(/\n\(\d+ items?\)$/, '') : '(no sync sessions)'
  }`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
