// Every error a user can cause, in one place. A TapirError is the user's input at fault (bad file,
// bad flag, bad shape): the CLI prints its message alone and exits with code 2.
export class TapirError extends Error {
  override name = 'TapirError';
}
/** A model file that is truncated, lies about sizes, or uses what tapir does not support. */
export class FormatError extends TapirError {
  override name = 'FormatError';
  constructor(file: string, msg: string) {
    super(`${file}: ${msg}`);
  }
}
/** Tensors whose shapes or dtypes do not fit an op. */
export class ShapeError extends TapirError {
  override name = 'ShapeError';
}
/** Flags and arguments that make no sense. */
export class UsageError extends TapirError {
  override name = 'UsageError';
}
/** WebGPU could not be started; the message says why and how to fix it. */
export class GpuUnavailableError extends TapirError {
  override name = 'GpuUnavailableError';
}
/** Work stopped because whoever asked for it went away (a closed request); not the input's fault. */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor() { super('cancelled'); }
}
