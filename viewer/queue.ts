// One GPU, many requests: jobs run one at a time, in the order they came. A job whose requester goes
// away is dropped if it is still waiting, and told to stop (its signal aborts) if it is running, so a
// closed tab frees the GPU for the next request instead of finishing work nobody will read.
import { CancelledError, TapirError } from '../compiler/errors.js';

interface Waiting { start: () => void; drop: () => void }

export class GpuQueue {
  private waiting: Waiting[] = [];
  private busy = false;
  /** failed: broke inside (a bug); refused: the request was at fault (a prompt too long, ...) */
  readonly stats = { done: 0, failed: 0, refused: 0, cancelled: 0 };

  /** Jobs now waiting, and whether one is running. */
  get state() { return { running: this.busy, waiting: this.waiting.length, ...this.stats }; }

  /** Run `work` when the GPU is free; rejects with a CancelledError if `signal` aborts first. */
  run<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Waiting = {
        drop: () => { this.stats.cancelled++; reject(new CancelledError()); },
        start: () => {
          this.busy = true;
          work().then(
            (v) => { this.stats.done++; resolve(v); },
            (e) => { this.stats[e instanceof CancelledError ? 'cancelled' : e instanceof TapirError ? 'refused' : 'failed']++; reject(e); },
          ).finally(() => { this.busy = false; this.next(); });
        },
      };
      if (signal.aborted) { entry.drop(); return; }
      signal.addEventListener('abort', () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) { this.waiting.splice(i, 1); entry.drop(); }
      }, { once: true });
      this.waiting.push(entry);
      this.next();
    });
  }

  private next() {
    if (this.busy) return;
    const e = this.waiting.shift();
    e?.start();
  }
}
