// A process run without blocking the test worker (a blocked worker times out its RPC with vitest and
// ends the whole run): its exit code (-1 when killed or not started), stdout and stderr.
import { execFile } from 'node:child_process';

export function runProcess(cmd: string, args: readonly string[], o: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: o.cwd, env: o.env, encoding: 'utf8', timeout: o.timeout ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });
}
