/**
 * The HTTP API, compatible with Ditto's: `POST /api/v4/store/execute`.
 *
 * @remarks
 * Request: JSON `{"statement": "...", "args": {...}}` with `Authorization: Bearer <key>`.
 * Answer: `{"transactionId", "queryType", "items", "mutatedDocumentIds", "warnings"}`; a failure
 * answers the HTTP status of the error's kind (`statusOf`) with
 * `{"error": {"description", "code"}}`. Bodies above the limit (1 MB by default) are refused
 * with 413 as soon as the limit is crossed, without reading the rest. Plain `node:http`: one
 * route does not need a framework, and this keeps every limit visible here.
 *
 * Binary values (DQL binary, attachments' bytes) have no JSON form; they are answered as
 * `{"$binary": "<base64>"}`.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { JsonValue } from '@lattice/dql';
import { hasCode, statusOf } from '@lattice/errors';
import type { ApiKeys } from './auth.js';
import type { GatewayTls } from './gateway.js';
import { checkArgs, queryTypeOf } from './codec.js';
import { gatewayError } from './errors.js';
import type { PeerApi } from './peer-api.js';
import { authorizeStatement } from './permissions.js';
import { SpanKind } from '@opentelemetry/api';
import { inSpan, traceHeaders } from './tracing.js';

/** The execute route. */
export const EXECUTE_PATH = '/api/v4/store/execute';

/** Options of {@link createHttpApi}. */
export interface HttpApiOptions {
  readonly peer: PeerApi;
  readonly keys: ApiKeys;
  /** Largest request body in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** Longest time a request may take (ms, default 30 s): answered 504 after it. */
  readonly requestTimeoutMs?: number;
  /** Serve HTTPS with these settings (mutual TLS when `clientCa` is given). */
  readonly tls?: GatewayTls;
}

function toJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $binary: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  }
  return v;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, error: unknown): void {
  const status = statusOf(error).http;
  const description = hasCode(error)
    ? error.message
    : `internal error: ${error instanceof Error ? error.message : String(error)}`;
  send(res, status, {
    error: { description, ...(hasCode(error) ? { code: error.code } : {}) },
  });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(tooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function tooLarge(limit: number): Error {
  return gatewayError('GATEWAY_BODY_TOO_LARGE', `request body above ${limit} bytes`, {
    limit: String(limit),
  });
}

function parseRequest(body: Buffer): {
  statement: string;
  args: Record<string, JsonValue>;
} {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw gatewayError(
      'GATEWAY_BAD_REQUEST',
      `malformed JSON body: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw gatewayError('GATEWAY_BAD_REQUEST', 'the body must be a JSON object');
  }
  const { statement, args } = json as { statement?: unknown; args?: unknown };
  if (typeof statement !== 'string' || statement.length === 0) {
    throw gatewayError('GATEWAY_BAD_REQUEST', '"statement" must be a non-empty string');
  }
  return { statement, args: checkArgs(args) };
}

/** Creates (does not start) the HTTP API server (HTTPS when `tls` is given). */
export function createHttpApi(options: HttpApiOptions): Server | HttpsServer {
  const limit = options.maxBodyBytes ?? 1024 * 1024;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== EXECUTE_PATH) throw gatewayError('GATEWAY_NOT_FOUND', `no route ${path}`);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      throw gatewayError('GATEWAY_METHOD_NOT_ALLOWED', `${req.method} ${path}: use POST`);
    }
    const principal = options.keys.check(req.headers.authorization);
    const { statement, args } = parseRequest(await readBody(req, limit));
    const permitted = authorizeStatement(principal, statement, args);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(gatewayError('GATEWAY_DEADLINE_EXCEEDED', `no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const headers = traceHeaders((n) => {
        const v = req.headers[n];
        return typeof v === 'string' ? v : undefined;
      });
      const r = await inSpan(`POST ${EXECUTE_PATH}`, SpanKind.SERVER, headers, () =>
        Promise.race([options.peer.execute(permitted, args), expired]),
      );
      send(res, 200, {
        transactionId: r.commitSeq,
        queryType: queryTypeOf(statement),
        items: toJson(r.items),
        mutatedDocumentIds: toJson(r.mutatedIds),
        warnings: r.warnings,
      });
    } finally {
      clearTimeout(timer);
    }
  };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      // A refused body is not read further; close the connection after answering so the
      // client stops sending.
      if (hasCode(error, 'GATEWAY_BODY_TOO_LARGE')) res.setHeader('connection', 'close');
      sendError(res, error);
    });
  };
  const serverOptions = { requestTimeout: timeoutMs + 5_000 };
  return options.tls
    ? createHttpsServer(
        {
          ...serverOptions,
          cert: options.tls.cert,
          key: options.tls.key,
          ...(options.tls.clientCa === undefined
            ? {}
            : { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: true }),
        },
        listener,
      )
    : createServer(serverOptions, listener);
}
