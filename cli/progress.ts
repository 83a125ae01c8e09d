// Progress of long work on stderr: a bar redrawn in place on a terminal; elsewhere (a log, a pipe, a
// parent process) a plain line every few seconds and one at the end, so a job that runs for minutes
// is never silent.
const LINE_EVERY_MS = 3000;

export function progressBar(label: string, total: number, o: { tty?: boolean; everyMs?: number; write?: (s: string) => void } = {}) {
  const tty = o.tty ?? process.stderr.isTTY === true;
  const write = o.write ?? ((s: string) => { process.stderr.write(s); });
  const every = o.everyMs ?? Number(process.env.TAPIR_PROGRESS_EVERY_MS ?? LINE_EVERY_MS);
  let last = -1, lastLine = performance.now(), done = 0, total_ = total;
  const pctOf = (d: number) => Math.floor((100 * d) / Math.max(1, total_));
  return {
    /** `done` of `total` (a total that grows or shrinks may be given again) */
    update(d: number, t = total_) {
      done = d;
      total_ = t;
      const pct = pctOf(d);
      if (tty) {
        if (pct === last) return;
        last = pct;
        const width = 30, fill = Math.round((width * Math.min(d, total_)) / Math.max(1, total_));
        write(`\r${label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${pct}%`);
      } else if (performance.now() - lastLine >= every) {
        lastLine = performance.now();
        write(`${label}: ${pct}% (${d} of ${total_})\n`);
      }
    },
    done() {
      if (tty) write('\n');
      else write(`${label}: done (${done} of ${total_})\n`);
    },
  };
}
