// A progress bar on stderr for long work (only when stderr is a terminal, so logs stay clean).
export function progressBar(label: string, total: number) {
  const tty = process.stderr.isTTY === true;
  let last = -1;
  return {
    update(done: number) {
      if (!tty) return;
      const pct = Math.floor((100 * done) / Math.max(1, total));
      if (pct === last) return;
      last = pct;
      const width = 30, fill = Math.round((width * done) / Math.max(1, total));
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${pct}%`);
    },
    done() { if (tty) process.stderr.write('\n'); },
  };
}
