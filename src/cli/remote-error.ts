/**
 * A refusal from a server's admin API: its error code and message, so that the CLI prints
 * the same line as it would locally. Apart from the client, so that recognising one costs
 * the command line no HTTPS client.
 */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}
