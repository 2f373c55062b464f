import { errorFactory, ErrorKind } from '@lattice/errors';

/** Error codes of the service runtime. */
export const ServiceErrorCode = {
  /** A setting from flags or environment is missing or invalid; details name the flag and variable. */
  SERVICE_CONFIG_INVALID: ErrorKind.INVALID_ARGUMENT,
  /** The service is stopping and takes no more work. */
  SERVICE_STOPPING: ErrorKind.UNAVAILABLE,
} as const;

/** Creates a service runtime error. */
export const serviceError = errorFactory(ServiceErrorCode);
