import cliProgress from 'cli-progress';

/**
 * A single progress bar on stderr for long work; silent when stderr is not a terminal or
 * when the command prints JSON, so scripts get clean output.
 */
export function progressBar(enabled: boolean, label: string) {
  if (!enabled || !process.stderr.isTTY) {
    return { update: (_done: number, _total: number, _what?: string) => {}, stop: () => {} };
  }
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} {what}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done: number, total: number, what = '') {
      if (!started) { bar.start(total, 0, { what }); started = true; }
      bar.setTotal(total);
      bar.update(done, { what });
    },
    stop() { if (started) bar.stop(); },
  };
}
