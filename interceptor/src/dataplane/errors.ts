/** What the dataplane throws for a failure it can name: the message says what to do. */
export class DataplaneError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'DataplaneError';
  }
}
