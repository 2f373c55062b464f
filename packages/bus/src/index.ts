export {
  assertPublishSubject,
  assertSubscribeSubject,
  BaseBus,
  DEADLINE_HEADER,
  DEFAULT_MAX_PENDING,
  DEFAULT_REQUEST_TIMEOUT_MS,
} from './base-bus.js';
export type { Unsubscribe } from './base-bus.js';
export { Channel } from './channel.js';
export { busError, BusErrorCode, decodeError, encodeError, ERROR_HEADER } from './errors.js';
export { LocalBus } from './local-bus.js';
export type { LocalBusOptions } from './local-bus.js';
export { NatsBus } from './nats-bus.js';
export type { NatsBusOptions } from './nats-bus.js';
export { serve } from './serve.js';
export type { Handler, HandlerContext, ServeOptions, Server } from './serve.js';
export { extractTraceContext, injectTraceContext, withSpan } from './trace.js';
export type {
  Bus,
  BusHeaders,
  BusMessage,
  BusStatus,
  PublishOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
} from './types.js';
