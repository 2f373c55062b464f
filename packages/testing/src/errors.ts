/** Errors of the test helpers. */
export class LatticeTestError extends Error {
  override readonly name = 'LatticeTestError';
  readonly code: 'TESTING_MISSING_PROGRAM' | 'TESTING_TIMEOUT' | 'TESTING_PROCESS_FAILED';

  constructor(code: LatticeTestError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
