import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sleep } from './sockets.js';
import type { TestApp } from './test-app.js';

const ROOT = resolve(process.cwd());

/**
 * Builds the server (what `npm start` runs) into `.data/test-build-<name>`, a build of the test's
 * own so that a concurrent `npm run build` does not change it under the test, and returns the path
 * of its `main.js`. With `reuse` (an env switch of the test) an existing build is kept.
 */
export function buildServer(name: string, reuse = false): string {
  const build = join(ROOT, '.data', `test-build-${name}`);
  const main = join(build, 'src', 'main.js');
  if (reuse && existsSync(main)) return main;
  // tsc emits even when another file has a type error; these tests are about the process, not types.
  const built = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', build],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (!existsSync(main)) throw new Error(`build failed: ${built.stdout}${built.stderr}`);
  return main;
}

export interface LogLine {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

/** The built server as a child process: its log lines (pino JSON on stdout), its exit. */
export class ServerProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  url = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(main: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, [main], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete.filter(Boolean)) {
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ level: 60, msg: `not JSON: ${line}` });
        }
      }
    });
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => done({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the URL once it listens; rejects if it exits first. */
  async listening(ms = 60_000): Promise<string> {
    const deadline = Date.now() + ms;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline && !exited) {
      const line = this.lines.find((l) => typeof l.url === 'string' && l.msg?.startsWith('Switchboard listening'));
      if (line) return (this.url = (line.url as string).replace('localhost', '127.0.0.1'));
      await sleep(50);
    }
    throw new Error(`the server did not start: ${this.stderr}\n${this.lines.map((l) => l.msg).join('\n')}`);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** Lines at error level or above (pino: 50 error, 60 fatal). */
  errors(): LogLine[] {
    return this.lines.filter((l) => l.level >= 50);
  }

  /** What the test helpers of test/support need of an app: its fetch. */
  asTestApp(): TestApp {
    return { fetch: (path: string, init?: RequestInit) => fetch(this.url + path, init) } as TestApp;
  }
}
