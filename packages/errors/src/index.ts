export {
  errorFactory,
  ErrorKind,
  GrpcStatus,
  hasCode,
  isErrorCode,
  LatticeError,
  STATUS_BY_KIND,
  statusOf,
} from './errors.js';
export type { CodedError, ErrorDetails, LatticeErrorOptions } from './errors.js';
