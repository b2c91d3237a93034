/**
 * A real `redis-server` on a free loopback port, started and stopped by the test (never the
 * system instance). No persistence, so nothing is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './ports.js';

export const REDIS_BIN = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
export const HAVE_REDIS = existsSync(REDIS_BIN);

export interface RedisServer {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** Kills the server abruptly (outage simulation). */
  kill(): Promise<void>;
  proc: ChildProcess;
}

async function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(200);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

export async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const proc = spawn(REDIS_BIN, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  for (let i = 0; i < 100; i++) {
    if (await pingOnce(p)) break;
    if (proc.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
    if (i === 99) throw new Error('redis-server did not start within 5 s');
  }
  const waitExit = () => new Promise<void>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', () => r())));
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    proc,
    async stop() {
      proc.kill('SIGTERM');
      await waitExit();
    },
    async kill() {
      proc.kill('SIGKILL');
      await waitExit();
    },
  };
}
